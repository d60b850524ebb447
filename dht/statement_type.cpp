#include "dht/statement_type.hpp"

#include <algorithm>
#include <chrono>

#include "dht/dht.hpp"
#include "dht/keys.hpp"
#include "wire/statement.hpp"

namespace ps::dht {

bool statement_acceptable(const ::dht::InfoHash& key, const ::dht::Blob& data,
                          const std::function<bool(ByteView)>& check) {
    try {
        const Key want = statements_key();
        if (data.size() > wire::kMaxStatementBytes || !std::equal(want.begin(), want.end(), key.data())) return false;
        const ByteView b(data.data(), data.size());
        return static_cast<bool>(wire::decode_statement(b)) && (!check || check(b));
    } catch (...) {  // on OpenDHT's thread: refuse, never unwind into it
        return false;
    }
}

::dht::ValueType statement_value_type(bool verify, std::function<bool(ByteView)> check,
                                      std::function<void()> on_refused) {
    auto admit = [verify, check, on_refused](const ::dht::InfoHash& key, const std::shared_ptr<::dht::Value>& v) {
        if (!v) return false;
        if (!verify) return v->size() <= ::dht::MAX_VALUE_SIZE;
        const bool ok = statement_acceptable(key, v->data, check);
        if (!ok && on_refused) on_refused();
        return ok;
    };
    auto store = [admit](::dht::InfoHash key, std::shared_ptr<::dht::Value>& v, const ::dht::InfoHash&,
                         const ::dht::SockAddr&) { return admit(key, v); };
    auto edit = [admit](::dht::InfoHash key, const std::shared_ptr<::dht::Value>&, std::shared_ptr<::dht::Value>& new_v,
                        const ::dht::InfoHash&, const ::dht::SockAddr&) { return admit(key, new_v); };
    return ::dht::ValueType(kStatementValueType, "patchswarm-statement",
                            std::chrono::seconds(kHolderValueExpirySeconds), store, edit);
}

}  // namespace ps::dht
