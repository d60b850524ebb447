// Replays fuzz inputs without libFuzzer: each argument is a file or a folder of
// files, fed one by one to LLVMFuzzerTestOneInput. A crash or sanitizer report
// fails the run; so does an empty corpus, so a lost corpus cannot pass silently.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
    namespace fs = std::filesystem;
    std::vector<fs::path> files;
    for (int i = 1; i < argc; ++i) {
        fs::path p(argv[i]);
        if (fs::is_directory(p)) {
            for (auto& e : fs::recursive_directory_iterator(p))
                if (e.is_regular_file()) files.push_back(e.path());
        } else if (fs::is_regular_file(p)) {
            files.push_back(p);
        } else {
            std::fprintf(stderr, "replay: %s: no such file or folder\n", argv[i]);
            return 2;
        }
    }
    if (files.empty()) {
        std::fprintf(stderr, "replay: no inputs found\n");
        return 2;
    }
    for (auto& f : files) {
        std::ifstream in(f, std::ios::binary);
        std::vector<std::uint8_t> buf((std::istreambuf_iterator<char>(in)), {});
        LLVMFuzzerTestOneInput(buf.data(), buf.size());
    }
    std::printf("replay: %zu inputs ran\n", files.size());
    return 0;
}
