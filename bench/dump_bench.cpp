// Downtime of `wpckpt dump`: frozen_time of a process of 1 and 8 GiB (sizes on
// the command line, default "1 8"), dumped without a parent (every page is
// copied while frozen) and right after a pre-dump (only what was written
// since is copied while frozen), side by side in one run.
//
// The target is this binary re-executed under `wpckpt run` (the agent): it
// fills N GiB with "mixed" pages (zstd ratio about 2), then rewrites a 16 MiB
// hot set without pause. With a pre-dump shortly before, the pages written
// since are about that hot set, whatever N is: frozen time must follow it,
// not the size of the process.
//
//   dump_bench [GIB...]      (WPCKPT=path of the wpckpt binary, default ../wpckpt)
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

constexpr uint64_t kHotBytes = 16ull << 20;

[[noreturn]] void target_main(uint64_t gib, const char* ready_path) {
  uint64_t size = gib << 30;
  auto* mem = static_cast<uint64_t*>(mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (mem == MAP_FAILED) _exit(2);
  uint64_t x = 88172645463325252ull;
  for (uint64_t page = 0; page < size / 4096; ++page) {
    uint64_t* p = mem + page * 512;
    for (int i = 0; i < 256; ++i) {  // half random or text-like, half zero
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      p[i] = (page & 1) ? x : (0x2065676170000000ull | (x % 1000));
    }
  }
  FILE* f = std::fopen(ready_path, "w");
  std::fprintf(f, "ready\n");
  std::fclose(f);
  for (uint64_t round = 0;; ++round)
    for (uint64_t off = 0; off < kHotBytes / 8; off += 512) mem[off + (round % 256)] = round;
}

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  if (pclose(p) != 0) std::fprintf(stderr, "failed: %s\n%s\n", cmd.c_str(), out.c_str());
  return out;
}

nlohmann::json run_json(const std::string& cmd) {
  auto doc = nlohmann::json::parse(run(cmd), nullptr, false);
  return doc.is_discarded() ? nlohmann::json::object() : doc;
}

struct Row {
  double frozen_ms = 0, memdump_ms = 0, memwrite_ms = 0;
  uint64_t pages_written = 0;
};

Row row_of(const nlohmann::json& d) {
  return {d.value("frozen_time", 0.0) / 1e3, d.value("memdump_time", 0.0) / 1e3, d.value("memwrite_time", 0.0) / 1e3,
          d.value("pages_written", uint64_t{0})};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "--target") == 0) target_main(std::strtoull(argv[2], nullptr, 10), argv[3]);
  std::vector<uint64_t> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(std::strtoull(argv[i], nullptr, 10));
  if (sizes.empty()) sizes = {1, 8};
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe");
  std::string wpckpt = std::getenv("WPCKPT") ? std::getenv("WPCKPT") : (self.parent_path() / "../wpckpt").string();
  std::filesystem::path work = std::filesystem::temp_directory_path() / ("dump_bench." + std::to_string(getpid()));
  std::filesystem::create_directories(work);

  std::printf("%-5s | %-28s | %-28s | %s\n", "size", "dump without parent", "dump after a pre-dump", "frozen ratio");
  std::printf("%-5s | %10s %8s %8s | %10s %8s %8s |\n", "GiB", "frozen ms", "pages", "memdump", "frozen ms", "pages",
              "memdump");
  for (uint64_t gib : sizes) {
    std::string ready = (work / "ready").string();
    std::filesystem::remove(ready);
    pid_t pid = fork();
    if (pid == 0) {
      execl(wpckpt.c_str(), wpckpt.c_str(), "run", "--", self.c_str(), "--target", std::to_string(gib).c_str(),
            ready.c_str(), nullptr);
      _exit(127);
    }
    while (!std::filesystem::exists(ready)) usleep(10000);
    std::string t = std::to_string(pid);
    std::string full = (work / "full").string(), pre = (work / "pre").string(), last = (work / "last").string();
    // Without a parent: every page is copied while frozen.
    Row a = row_of(run_json(wpckpt + " dump -t " + t + " -D " + full + " --leave-running --json"));
    // A pre-dump (a delta against the first dump), then the dump right after it.
    run(wpckpt + " pre-dump -t " + t + " -D " + pre + " --prev-images-dir " + full + " --json");
    Row b = row_of(run_json(wpckpt + " dump -t " + t + " -D " + last + " --prev-images-dir " + pre +
                            " --leave-running --json"));
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    std::printf("%-5llu | %10.1f %8llu %8.1f | %10.1f %8llu %8.1f | %.1fx shorter\n",
                static_cast<unsigned long long>(gib), a.frozen_ms, static_cast<unsigned long long>(a.pages_written),
                a.memdump_ms, b.frozen_ms, static_cast<unsigned long long>(b.pages_written), b.memdump_ms,
                b.frozen_ms > 0 ? a.frozen_ms / b.frozen_ms : 0.0);
    std::fflush(stdout);
    std::filesystem::remove_all(work / "full");
    std::filesystem::remove_all(work / "pre");
    std::filesystem::remove_all(work / "last");
  }
  std::filesystem::remove_all(work);
  return 0;
}
