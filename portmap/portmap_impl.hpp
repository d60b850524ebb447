// The two methods behind portmap.hpp, one file each (upnp.cpp, natpmp.cpp).
#pragma once

#include "portmap/portmap.hpp"

namespace ps::portmap::detail {

Result<Mapping> upnp_map(const Options& o, Protocol p, std::uint16_t internal, std::uint16_t wanted);
Result<Mapping> upnp_renew(const Options& o, const Mapping& m);
Status upnp_unmap(const Mapping& m);

Result<Mapping> natpmp_map(const Options& o, Protocol p, std::uint16_t internal, std::uint16_t wanted);
Status natpmp_unmap(const Options& o, const Mapping& m);

}  // namespace ps::portmap::detail
