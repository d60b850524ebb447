// core/cache: which cached patches a super-node drops to make room for a new
// one under its disk quota. Least recently used first; never one that is still
// downloading or being served (pinned). Sans-IO: the driver says what it holds
// and when each entry was last used; this answers what to evict.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/bytes.hpp"

namespace ps::core {

struct CacheEntry {
    Hash32 id{};
    std::uint64_t size = 0;          // bytes it takes on disk
    std::uint64_t last_used_ms = 0;  // added, completed, or last served
    bool pinned = false;             // downloading, or served recently: never evicted
};

struct EvictionPlan {
    bool fits = false;            // after evicting `evict`, `need` fits the quota
    std::vector<Hash32> evict;    // least recently used first; empty when !fits
    std::uint64_t used = 0;       // bytes held before eviction
    std::uint64_t freed = 0;      // bytes `evict` frees
    std::uint64_t pinned = 0;     // bytes that cannot be evicted
};

// Plans room for `need` more bytes under `quota` (0 = no quota: always fits).
// Evicts only what is needed, oldest use first (ties: lower id first, so the
// answer is deterministic). When even evicting every unpinned entry is not
// enough, evicts nothing and says so: a cache is never emptied for a patch
// that will not fit anyway.
inline EvictionPlan plan_eviction(std::vector<CacheEntry> entries, std::uint64_t quota, std::uint64_t need) {
    EvictionPlan plan;
    for (auto& e : entries) {
        plan.used += e.size;
        if (e.pinned) plan.pinned += e.size;
    }
    if (quota == 0 || plan.used + need <= quota) {
        plan.fits = true;
        return plan;
    }
    if (need > quota || plan.pinned + need > quota) return plan;
    std::sort(entries.begin(), entries.end(), [](const CacheEntry& a, const CacheEntry& b) {
        return a.last_used_ms != b.last_used_ms ? a.last_used_ms < b.last_used_ms : a.id < b.id;
    });
    for (auto& e : entries) {
        if (plan.used - plan.freed + need <= quota) break;
        if (e.pinned) continue;
        plan.evict.push_back(e.id);
        plan.freed += e.size;
    }
    plan.fits = plan.used - plan.freed + need <= quota;
    if (!plan.fits) {  // cannot happen given the pinned check above; kept for safety
        plan.evict.clear();
        plan.freed = 0;
    }
    return plan;
}

}  // namespace ps::core
