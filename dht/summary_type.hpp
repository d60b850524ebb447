// Private to dht/: the OpenDHT value type of domain summaries (kSummaryValueType).
#pragma once

#include <opendht/value.h>

#include <functional>

namespace ps::dht {

// Storing nodes keep a summary only when it is valid, fresh and about the
// patch of its key (summary_fits_key); an edit of a stored one only by the
// same signer with a seq no lower. `refused` counts each refusal.
::dht::ValueType summary_value_type(bool verify, std::function<void()> refused);

}  // namespace ps::dht
