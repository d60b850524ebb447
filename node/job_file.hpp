// The daemon's job file (DATA/<id>/job): what a download is for, kept across
// restarts. It is outside bytes (a damaged disk, another program), so it is
// parsed with hard limits and a reason naming the problem.
//
//   patchswarm-job-v1
//   out=<export path; empty for a super-node's cached copy>
//   state=downloading|paused|complete|failed
//   hook=<outcome of the on-complete hook; optional>
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace ps::node {

inline constexpr std::string_view kJobHeader = "patchswarm-job-v1";
inline constexpr std::size_t kMaxJobFile = 16 * 1024;  // bytes, the whole file
inline constexpr std::size_t kMaxJobValue = 4096;      // bytes, one value (a path)

struct JobFile {
    std::string out, state, hook;
    bool operator==(const JobFile&) const = default;
};

// Refused: over kMaxJobFile, a missing header, a line without '=', an unknown
// or repeated key, a value over kMaxJobValue or holding a NUL or CR, a
// missing or unknown state.
Result<JobFile> parse_job_file(std::string_view text);
// The file's text; an error when a value could not be read back the same
// (a newline, CR or NUL in it, or over kMaxJobValue).
Result<std::string> format_job_file(const JobFile& f);

}  // namespace ps::node
