// Runs a fuzz target once over files and folders of inputs, without
// libFuzzer: the ordinary test that replays the seed corpus and every crash
// once found (tests/fuzz/regressions/<target>/). A missing folder is skipped
// (a target may have no regressions yet), but no input at all is a failure,
// so a wrong path cannot make the test pass by doing nothing.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace fs = std::filesystem;

namespace {
void run(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::fprintf(stderr, "replay: %s (%zu bytes)\n", file.c_str(), bytes.size());
  LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
}
}  // namespace

int main(int argc, char** argv) {
  std::size_t count = 0;
  for (int i = 1; i < argc; ++i) {
    const fs::path p(argv[i]);
    if (fs::is_directory(p)) {
      std::vector<fs::path> files;
      for (const auto& e : fs::directory_iterator(p)) {
        if (e.is_regular_file() && e.path().filename().string().front() != '.') {
          files.push_back(e.path());
        }
      }
      std::sort(files.begin(), files.end());
      for (const auto& f : files) run(f);
      count += files.size();
    } else if (fs::is_regular_file(p)) {
      run(p);
      ++count;
    } else {
      std::fprintf(stderr, "replay: %s does not exist, skipped\n", argv[i]);
    }
  }
  if (count == 0) {
    std::fprintf(stderr, "replay: no inputs at all: the corpus path is wrong\n");
    return 1;
  }
  std::fprintf(stderr, "replay: %zu inputs, no crash\n", count);
  return 0;
}
