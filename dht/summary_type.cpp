#include "dht/summary_type.hpp"

#include <algorithm>
#include <chrono>
#include <limits>

#include "dht/dht.hpp"
#include "dht/keys.hpp"

namespace ps::dht {
namespace {

namespace od = ::dht;

std::int64_t now_s() {
    using namespace std::chrono;
    return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

Key key_of(const od::InfoHash& h) {
    Key k;
    std::copy_n(h.data(), k.size(), k.begin());
    return k;
}

}  // namespace

od::ValueType summary_value_type(bool verify, std::function<void()> refused) {
    // On OpenDHT's thread: an exception refuses the value, never unwinds into it.
    auto admit = [verify, refused](const od::InfoHash& key, const std::shared_ptr<od::Value>& v,
                                   const std::shared_ptr<od::Value>& old_v) {
        if (!v) return false;
        if (!verify) return v->size() <= od::MAX_VALUE_SIZE;
        bool ok = false;
        try {
            crypto::PublicKey who{}, old_who{};
            std::uint64_t seq = 0, old_seq = 0;
            ok = summary_fits_key(v->data, key_of(key), now_s(), 3600, &who, &seq);
            // The old copy may be stale by now; it still names its owner.
            if (ok && old_v &&
                summary_fits_key(old_v->data, key_of(key), now_s(), std::numeric_limits<std::int64_t>::max() / 2,
                                 &old_who, &old_seq))
                ok = who == old_who && seq >= old_seq;
        } catch (...) {
            ok = false;
        }
        if (!ok && refused) refused();
        return ok;
    };
    auto store = [admit](od::InfoHash key, std::shared_ptr<od::Value>& v, const od::InfoHash&, const od::SockAddr&) {
        return admit(key, v, nullptr);
    };
    auto edit = [admit](od::InfoHash key, const std::shared_ptr<od::Value>& old_v, std::shared_ptr<od::Value>& new_v,
                        const od::InfoHash&, const od::SockAddr&) { return admit(key, new_v, old_v); };
    return od::ValueType(kSummaryValueType, "patchswarm-summary", std::chrono::seconds(kHolderValueExpirySeconds), store,
                         edit);
}

}  // namespace ps::dht
