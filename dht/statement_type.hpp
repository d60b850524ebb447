// Private to dht/: the OpenDHT value type of signed operator statements and
// the check storing nodes run on them (docs/dht.md, "Statement values").
#pragma once

#include <opendht/value.h>

#include <functional>

#include "core/bytes.hpp"

namespace ps::dht {

// True for a value under statements_key() that decodes as a signed statement
// (wire/statement.hpp) and passes `check` when set. Never throws.
bool statement_acceptable(const ::dht::InfoHash& key, const ::dht::Blob& data,
                          const std::function<bool(ByteView)>& check);

// Storing nodes keep a statement only when statement_acceptable (with
// `verify`; without, anything up to OpenDHT's size limit), for a new value and
// an edit alike; each refusal calls on_refused. Runs on OpenDHT's threads.
::dht::ValueType statement_value_type(bool verify, std::function<bool(ByteView)> check,
                                      std::function<void()> on_refused);

}  // namespace ps::dht
