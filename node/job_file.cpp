#include "node/job_file.hpp"

#include <array>

namespace ps::node {

namespace {

constexpr std::array<std::string_view, 4> kStates = {"downloading", "paused", "complete", "failed"};

Status check_value(std::string_view key, std::string_view v) {
    if (v.size() > kMaxJobValue)
        return err("job file: " + std::string(key) + " is " + std::to_string(v.size()) + " bytes, over the limit of " +
                   std::to_string(kMaxJobValue));
    if (v.find_first_of(std::string_view("\n\r\0", 3)) != std::string_view::npos)
        return err("job file: " + std::string(key) + " holds a newline, CR or NUL");
    return {};
}

}  // namespace

Result<JobFile> parse_job_file(std::string_view text) {
    if (text.size() > kMaxJobFile)
        return err("job file: " + std::to_string(text.size()) + " bytes, over the limit of " + std::to_string(kMaxJobFile));
    JobFile f;
    bool header = false, seen_out = false, seen_state = false, seen_hook = false;
    std::size_t pos = 0, line_no = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        ++line_no;
        if (!header) {
            if (line != kJobHeader) return err("job file: the first line is not " + std::string(kJobHeader));
            header = true;
            continue;
        }
        auto where = "job file line " + std::to_string(line_no);
        auto eq = line.find('=');
        if (eq == std::string_view::npos) return err(where + ": no '='");
        std::string_view key = line.substr(0, eq), value = line.substr(eq + 1);
        if (auto st = check_value(key.substr(0, 32), value); !st) return err(where + ": " + st.error());
        bool* seen = key == "out" ? &seen_out : key == "state" ? &seen_state : key == "hook" ? &seen_hook : nullptr;
        if (!seen) return err(where + ": unknown key '" + std::string(key.substr(0, 32)) + "'");
        if (*seen) return err(where + ": " + std::string(key) + " given twice");
        *seen = true;
        (key == "out" ? f.out : key == "state" ? f.state : f.hook) = std::string(value);
    }
    if (!header) return err("job file: empty");
    if (!seen_state) return err("job file: no state");
    bool known = false;
    for (auto s : kStates) known |= f.state == s;
    if (!known) return err("job file: unknown state '" + f.state.substr(0, 32) + "'");
    return f;
}

Result<std::string> format_job_file(const JobFile& f) {
    for (auto [key, v] : {std::pair<std::string_view, const std::string*>{"out", &f.out}, {"state", &f.state}, {"hook", &f.hook}})
        if (auto st = check_value(key, *v); !st) return std::move(st).take_error();
    std::string text = std::string(kJobHeader) + "\nout=" + f.out + "\nstate=" + f.state + "\n";
    if (!f.hook.empty()) text += "hook=" + f.hook + "\n";
    return text;
}

}  // namespace ps::node
