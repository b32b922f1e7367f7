// Memory restore speed: how fast `wpckpt restore` fills a process's memory
// from an image, side by side with the two limits it cannot beat on this
// machine: memcpy into fresh memory (the page-fault + copy cost every restore
// pays) and zstd decompression of the same image (ImageChain::for_each_run
// with nothing done with the bytes). Sizes in GiB on the command line
// (default: 1 8). The fill is measured twice: through /proc/PID/mem alone
// and with UFFDIO_COPY, as restore does it (uffd/mem is their ratio).
// Pages are "mixed": half text-like, half random, half of each page zero
// (zstd ratio about 2, like the synthetic pages of docs/KERNEL.md §11).
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <sys/syscall.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "dump-format/image.hpp"
#include "lib/base/uapi/process.hpp"
#include "lib/base/uapi/userfaultfd.hpp"
#include "lib/restore/memory_fill.hpp"
#include "lib/restore/uffd_fill.hpp"

using namespace wpckpt;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint64_t kBase = 0x200000000000ull;  // where the target area lives (same in both processes)

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void fill_pattern(std::vector<std::byte>& buf, uint64_t seed) {
  uint64_t x = seed * 2654435761u + 1;
  for (size_t page = 0; page < buf.size() / 4096; ++page) {
    auto* p = reinterpret_cast<uint64_t*>(buf.data() + page * 4096);
    for (size_t i = 0; i < 256; ++i) {  // first half: text-like or random, second half zero
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      p[i] = (page & 1) ? x : (0x2065676170000000ull | (x % 1000));
    }
    std::memset(p + 256, 0, 2048);
  }
}

struct Row {
  double memcpy_gbps = 0, zstd_gbps = 0, restore_gbps = 0, restore_uffd_gbps = 0;
};

constexpr int kChildUffd = 100;  // where the child keeps its userfaultfd

// Fills `bytes` at kBase in a fresh child from the image, as restore does:
// GB/s of the fill.
double fill_child(const image::ImageChain& chain, uint64_t bytes, bool uffd) {
  int ready[2];
  if (pipe(ready) != 0) std::exit(1);
  pid_t child = fork();
  if (child == 0) {
    if (mmap(reinterpret_cast<void*>(kBase), bytes, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) == MAP_FAILED)
      _exit(1);
    int fd = static_cast<int>(syscall(uapi::kNrUserfaultfd, O_CLOEXEC | uapi::kUffdUserModeOnly));
    if (fd < 0 || dup2(fd, kChildUffd) < 0) _exit(1);
    if (write(ready[1], "r", 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  close(ready[1]);
  char c;
  if (read(ready[0], &c, 1) != 1) {
    std::fprintf(stderr, "fill: the child could not map its area or make a userfaultfd\n");
    std::exit(1);
  }
  close(ready[0]);
  int mem = open(("/proc/" + std::to_string(child) + "/mem").c_str(), O_RDWR);
  state::Mapping m;
  m.start = kBase;
  m.end = kBase + bytes;
  m.kind = tracker::MemoryKind::Anon;
  std::unique_ptr<restore::UffdFill> fill;
  if (uffd) {
    UniqueFd pidfd(static_cast<int>(syscall(uapi::kNrPidfdOpen, child, 0)));
    fill = restore::UffdFill::adopt(UniqueFd(static_cast<int>(syscall(uapi::kNrPidfdGetfd, pidfd.get(), kChildUffd, 0))),
                                    child, {m});
    if (!fill) {
      std::fprintf(stderr, "fill: the child's userfaultfd could not be registered\n");
      std::exit(1);
    }
  }
  auto stats = restore::fill_memory(chain, mem, fill.get(), {m}, {});
  if (!stats) {
    std::fprintf(stderr, "fill: %s\n", stats.error().message().c_str());
    std::exit(1);
  }
  if (uffd && stats->pages_copied != stats->pages_stored) {
    std::fprintf(stderr, "fill: %llu of %llu pages placed with UFFDIO_COPY\n",
                 static_cast<unsigned long long>(stats->pages_copied), static_cast<unsigned long long>(stats->pages_stored));
    std::exit(1);
  }
  fill.reset();
  close(mem);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  return static_cast<double>(bytes) / stats->seconds / 1e9;
}

Row run(uint64_t gib, const std::filesystem::path& dir) {
  const uint64_t bytes = gib << 30;
  const size_t chunk = 64 << 20;
  std::vector<std::byte> buf(chunk);
  Row row;

  // Image: one dump covering the whole area.
  std::filesystem::remove_all(dir);
  auto writer = image::ImageWriter::create(dir, image::ImageKind::Dump, std::nullopt, {});
  if (!writer) {
    std::fprintf(stderr, "create image: %s\n", writer.error().message().c_str());
    std::exit(1);
  }
  image::MemoryArea area;
  area.start = kBase;
  area.end = kBase + bytes;
  area.prot = "rw-p";
  area.backing = "anon";
  (*writer)->set_areas({area});
  for (uint64_t off = 0; off < bytes; off += chunk) {
    fill_pattern(buf, off / chunk);
    if (auto r = (*writer)->add_pages(kBase + off, buf); !r) std::exit(1);
  }
  auto info = (*writer)->commit();
  if (!info) std::exit(1);
  auto chain = image::ImageChain::open(dir);
  if (!chain) std::exit(1);

  // Limit 1: memcpy of the same bytes into fresh anonymous memory.
  {
    auto* dst = static_cast<std::byte*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    fill_pattern(buf, 7);
    auto t = Clock::now();
    for (uint64_t off = 0; off < bytes; off += chunk) std::memcpy(dst + off, buf.data(), chunk);
    row.memcpy_gbps = static_cast<double>(bytes) / seconds_since(t) / 1e9;
    munmap(dst, bytes);
  }
  // Limit 2: zstd decompression of the image, bytes thrown away.
  {
    auto t = Clock::now();
    uint64_t seen = 0;
    auto r = (*chain)->for_each_run([&](uint64_t, std::span<const std::byte> d, uint64_t z) -> Result<void> {
      seen += d.size() + z * 4096;
      return ok();
    });
    if (!r) std::exit(1);
    row.zstd_gbps = static_cast<double>(seen) / seconds_since(t) / 1e9;
  }
  // The restore fill: into a child's fresh area at the same address, as
  // restore does, once through /proc/PID/mem alone and once with UFFDIO_COPY
  // (uffd_fill.hpp), in turn, the best of two each.
  for (int round = 0; round < 4; ++round) {
    const bool uffd = round % 2 == 1;
    double& best = uffd ? row.restore_uffd_gbps : row.restore_gbps;
    best = std::max(best, fill_child(**chain, bytes, uffd));
  }
  std::filesystem::remove_all(dir);
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<uint64_t> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(std::stoull(argv[i]));
  if (sizes.empty()) sizes = {1, 8};
  std::filesystem::path dir = std::filesystem::temp_directory_path() / ("restore-bench-" + std::to_string(getpid()));
  std::printf("%-6s %14s %14s %14s %14s %12s %12s %12s\n", "GiB", "memcpy GB/s", "zstd GB/s", "/proc/mem GB/s",
              "uffd GB/s", "uffd/mem", "vs memcpy", "vs zstd");
  for (uint64_t gib : sizes) {
    Row r = run(gib, dir);
    std::printf("%-6llu %14.2f %14.2f %14.2f %14.2f %12.2f %11.0f%% %11.0f%%\n", static_cast<unsigned long long>(gib),
                r.memcpy_gbps, r.zstd_gbps, r.restore_gbps, r.restore_uffd_gbps, r.restore_uffd_gbps / r.restore_gbps,
                100 * r.restore_uffd_gbps / r.memcpy_gbps, 100 * r.restore_uffd_gbps / r.zstd_gbps);
  }
  return 0;
}
