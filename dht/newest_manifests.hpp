// Storing nodes' memory of manifest versions (dht/dht.cpp's manifest value
// type): kept apart so that the adapter stays one readable file.
#pragma once

#include <opendht/infohash.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>

#include "dht/dht.hpp"

namespace ps::dht {

// Storing nodes: the newest manifest version each key held within the value
// lifetime, so an older one is refused whether it comes as an edit of the same
// value or as a new value. Used only with a manifest_check (verified versions).
class NewestManifests {
public:
    // True when `version` is not older than the newest recorded for key; records it.
    bool admit(const ::dht::InfoHash& key, std::uint64_t version) {
        const auto now = std::chrono::steady_clock::now();
        const auto until = now + std::chrono::seconds(kHolderValueExpirySeconds);
        std::lock_guard lock(mu_);
        auto it = by_key_.find(key);
        if (it != by_key_.end() && it->second.until > now) {
            if (version < it->second.version) return false;
            it->second = {version, until};
            return true;
        }
        if (it != by_key_.end()) {
            it->second = {version, until};
            return true;
        }
        if (by_key_.size() >= kMaxKeys)
            std::erase_if(by_key_, [&](const auto& e) { return e.second.until <= now; });
        if (by_key_.size() < kMaxKeys) by_key_.emplace(key, Newest{version, until});
        return true;  // a full table tracks no more keys; readers still pick the newest
    }

private:
    static constexpr std::size_t kMaxKeys = 4096;
    struct Newest {
        std::uint64_t version = 0;
        std::chrono::steady_clock::time_point until;
    };
    std::mutex mu_;
    std::map<::dht::InfoHash, Newest> by_key_;
};

}  // namespace ps::dht
