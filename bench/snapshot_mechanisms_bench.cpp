// snapshot_mechanisms_bench: the two ways to take a consistent live snapshot
// (issue 14, docs/KERNEL.md §17), side by side on the same populated memory
// in one run, with a writer thread that stores into random pages as fast as
// it can throughout:
//  - fork: the freeze is fork() itself (page tables copied, every page made
//    copy-on-write); the copy is then read through /proc/PID/mem by the
//    child while the writer runs on, paying a page copy on its first write
//    to each page;
//  - sync uffd-wp: the freeze is UFFDIO_REGISTER(WP) + UFFDIO_WRITEPROTECT
//    of the whole region (the "write-protect cost"); then a copier thread
//    copies every page and unprotects it, while a handler thread serves each
//    write fault by copying the page first (copy-before-write) and
//    unprotecting it; the writer waits for that ("held writes").
// Printed per size: the freeze of each, the goal "10 ms + the write-protect
// cost" against the fork's freeze, the time until the copy is complete, the
// writer's rate during the copy against its undisturbed rate, and the held
// writes' count and latency. The sync-uffd-wp copy is checked: every page is
// copied once, holding exactly what it held at the freeze.
//
//   snapshot_mechanisms_bench [--gib 1,4]
// Never run by ctest. Needs userfaultfd (root, or vm.unprivileged_userfaultfd).
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "lib/base/uapi/userfaultfd.hpp"

namespace {

using Clock = std::chrono::steady_clock;
namespace uapi = wpckpt::uapi;
constexpr size_t kPage = 4096;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "snapshot_mechanisms_bench: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// Stores a growing sequence number into the first word of random pages; each
// store's duration above 2 us is recorded (a held or copied-on-write page).
class Writer {
 public:
  Writer(uint64_t* mem, size_t pages) : mem_(mem), pages_(pages), thread_([this] { run(); }) {}
  ~Writer() {
    stop_ = true;
    thread_.join();
  }
  // Holds the writer between two stores (the freeze) until resume().
  void pause() {
    pause_ = true;
    while (!paused_) std::this_thread::yield();
  }
  void resume() {
    paused_ = false;
    pause_ = false;
  }
  uint64_t stores() const { return stores_.load(); }
  std::vector<double> take_slow() {
    pause();
    std::vector<double> out;
    out.swap(slow_us_);
    resume();
    return out;
  }
  // While paused (the writer does not touch the list then).
  void clear_slow() { slow_us_.clear(); }

 private:
  void run() {
    uint64_t x = 0x9E3779B97F4A7C15ull, seq = 1;
    while (!stop_) {
      if (pause_) {
        paused_ = true;
        while (pause_ && !stop_) std::this_thread::yield();
        paused_ = false;
        continue;
      }
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      auto t = Clock::now();
      mem_[(x % pages_) * (kPage / 8)] = seq++;
      double us = std::chrono::duration<double, std::micro>(Clock::now() - t).count();
      if (us > 2) slow_us_.push_back(us);
      stores_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  uint64_t* mem_;
  size_t pages_;
  std::atomic<bool> stop_{false}, pause_{false}, paused_{false};
  std::atomic<uint64_t> stores_{0};
  std::vector<double> slow_us_;
  std::thread thread_;
};

double rate_over(const Writer& w, double seconds) {
  uint64_t a = w.stores();
  auto t = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  return static_cast<double>(w.stores() - a) / (ms_since(t) / 1000);
}

struct ForkResult {
  double freeze_ms = 0, copy_ms = 0, rate_during = 0;
};

// The child is the copy: it reads itself through /proc/self/mem (as wpckpt
// reads the stopped copy through /proc/PID/mem) and reports how long it took.
ForkResult fork_mechanism(Writer& w, uint64_t* mem, size_t bytes) {
  int pipefd[2];
  if (pipe(pipefd) != 0) die("pipe");
  ForkResult r;
  w.pause();  // the freeze: the process stops, then forks
  auto t = Clock::now();
  pid_t child = fork();
  if (child == 0) {
    auto c0 = Clock::now();
    int fd = open("/proc/self/mem", O_RDONLY);
    std::vector<char> buf(1 << 20);
    for (size_t off = 0; off < bytes; off += buf.size())
      if (pread(fd, buf.data(), buf.size(), static_cast<off_t>(reinterpret_cast<uintptr_t>(mem) + off)) <= 0) _exit(2);
    double ms = ms_since(c0);
    if (write(pipefd[1], &ms, sizeof ms) != sizeof ms) _exit(3);
    _exit(0);
  }
  if (child < 0) die("fork");
  r.freeze_ms = ms_since(t);
  w.resume();
  uint64_t a = w.stores();
  auto c = Clock::now();
  if (read(pipefd[0], &r.copy_ms, sizeof r.copy_ms) != sizeof r.copy_ms) die("the copy failed");
  r.rate_during = static_cast<double>(w.stores() - a) / (ms_since(c) / 1000);
  waitpid(child, nullptr, 0);
  close(pipefd[0]);
  close(pipefd[1]);
  return r;
}

struct WpResult {
  double register_ms = 0, protect_ms = 0, copy_ms = 0, rate_during = 0;
  uint64_t copied = 0, wrong = 0, held = 0;
  double hold_p50 = 0, hold_p99 = 0, hold_max = 0;
};

// Page states while the snapshot is copied.
enum : uint8_t { kToCopy, kCopying, kCopied };

class WpSnapshot {
 public:
  WpSnapshot(uint64_t* mem, size_t pages) : mem_(mem), pages_(pages), state_(pages), instant_(pages) {}

  WpResult run(Writer& w) {
    WpResult r;
    int uffd = static_cast<int>(syscall(uapi::kNrUserfaultfd, O_CLOEXEC | O_NONBLOCK));
    if (uffd < 0) die("userfaultfd");
    uapi::UffdioApi api{uapi::kUffdApi, 0, 0};
    if (ioctl(uffd, uapi::kUffdioApi, &api) != 0) die("UFFDIO_API");
    w.pause();  // the freeze
    for (size_t p = 0; p < pages_; ++p) instant_[p] = mem_[p * (kPage / 8)];  // to check the copy (not timed)
    auto t = Clock::now();
    uapi::UffdioRegister reg{{addr(0), pages_ * kPage}, uapi::kRegisterModeWp, 0};
    if (ioctl(uffd, uapi::kUffdioRegister, &reg) != 0) die("UFFDIO_REGISTER");
    r.register_ms = ms_since(t);
    t = Clock::now();
    protect(uffd, 0, pages_, true);
    r.protect_ms = ms_since(t);
    w.clear_slow();
    w.resume();
    uint64_t a = w.stores();
    auto c = Clock::now();
    std::atomic<bool> done{false};
    std::thread handler([&] { serve(uffd, done); });
    copy_all(uffd);
    r.copy_ms = ms_since(c);
    r.rate_during = static_cast<double>(w.stores() - a) / (r.copy_ms / 1000);
    done = true;
    handler.join();
    std::vector<double> slow = w.take_slow();
    r.held = slow.size();
    r.hold_p50 = percentile(slow, 0.5);
    r.hold_p99 = percentile(slow, 0.99);
    r.hold_max = slow.empty() ? 0 : *std::max_element(slow.begin(), slow.end());
    r.copied = copied_;
    r.wrong = wrong_;
    uapi::UffdioRange range{addr(0), pages_ * kPage};
    ioctl(uffd, uapi::kUffdioUnregister, &range);
    close(uffd);
    return r;
  }

 private:
  uint64_t addr(size_t page) const { return reinterpret_cast<uint64_t>(mem_) + page * kPage; }

  void protect(int uffd, size_t first, size_t count, bool on) {
    uapi::UffdioWriteprotect wp{{addr(first), count * kPage}, on ? uapi::kWriteprotectModeWp : 0};
    if (ioctl(uffd, uapi::kUffdioWriteprotect, &wp) != 0) die("UFFDIO_WRITEPROTECT");
  }

  // Copies page p unless someone else does; returns once it is copied.
  void copy_page(size_t p) {
    uint8_t expected = kToCopy;
    if (state_[p].compare_exchange_strong(expected, kCopying)) {
      // Stands for writing the page out; each thread copies into its own buffer.
      thread_local std::vector<uint64_t> sink(64 * kPage / 8);
      uint64_t* slot = sink.data() + (p % 64) * (kPage / 8);
      std::memcpy(slot, mem_ + p * (kPage / 8), kPage);
      if (slot[0] != instant_[p]) wrong_.fetch_add(1);
      copied_.fetch_add(1);
      state_[p] = kCopied;
      return;
    }
    while (state_[p].load() != kCopied) std::this_thread::yield();
  }

  // Copy-before-write: a write fault's page is copied, then unprotected (which wakes the writer).
  void serve(int uffd, std::atomic<bool>& done) {
    pollfd pfd{uffd, POLLIN, 0};
    while (!done) {
      if (poll(&pfd, 1, 10) <= 0) continue;
      uapi::UffdMsg msg;
      while (read(uffd, &msg, sizeof msg) == sizeof msg) {
        if (msg.event != uapi::kEventPagefault) continue;
        size_t p = (msg.arg.pagefault.address - addr(0)) / kPage;
        copy_page(p);
        protect(uffd, p, 1, false);
      }
    }
  }

  // The background copy, 256 pages (1 MiB) at a time, each chunk unprotected once copied.
  void copy_all(int uffd) {
    constexpr size_t kChunk = 256;
    for (size_t first = 0; first < pages_; first += kChunk) {
      size_t n = std::min(kChunk, pages_ - first);
      for (size_t p = first; p < first + n; ++p) copy_page(p);
      protect(uffd, first, n, false);
    }
  }

  uint64_t* mem_;
  size_t pages_;
  std::vector<std::atomic<uint8_t>> state_;
  std::vector<uint64_t> instant_;
  std::atomic<uint64_t> copied_{0}, wrong_{0};
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<uint64_t> sizes;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--gib" && i + 1 < argc) {
      std::stringstream s(argv[++i]);
      for (std::string x; std::getline(s, x, ',');) sizes.push_back(std::stoull(x));
    }
  }
  if (sizes.empty()) sizes = {1, 4};
  std::printf("%-4s | %-36s | %-46s | %s\n", "GiB", "fork: freeze, copy, writer rate during", "sync uffd-wp: freeze (register+protect), copy, rate",
              "fork freeze / (10 ms + WP cost); held writes p50/p99/max us");
  for (uint64_t gib : sizes) {
    const size_t bytes = gib << 30, pages = bytes / kPage;
    auto* mem = static_cast<uint64_t*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (mem == MAP_FAILED) die("mmap");
    madvise(mem, bytes, MADV_NOHUGEPAGE);  // 4 KiB pages, as most of a real process's memory
    if (madvise(mem, bytes, MADV_POPULATE_WRITE) != 0) die("MADV_POPULATE_WRITE");
    for (size_t p = 0; p < pages; ++p) mem[p * (kPage / 8)] = p;
    double undisturbed;
    ForkResult f;
    WpResult s;
    {
      Writer w(mem, pages);
      undisturbed = rate_over(w, 0.5);
      f = fork_mechanism(w, mem, bytes);
      auto snap = std::make_unique<WpSnapshot>(mem, pages);
      s = snap->run(w);
    }
    const double wp_ms = s.register_ms + s.protect_ms;
    std::printf("%-4llu | %7.1f ms %8.0f ms %6.2fx      | %7.1f ms (%.2f + %.1f) %8.0f ms %6.2fx   | %.2f; %llu held, %.0f/%.0f/%.0f\n",
                static_cast<unsigned long long>(gib), f.freeze_ms, f.copy_ms, f.rate_during / undisturbed, wp_ms,
                s.register_ms, s.protect_ms, s.copy_ms, s.rate_during / undisturbed, f.freeze_ms / (10 + wp_ms),
                static_cast<unsigned long long>(s.held), s.hold_p50, s.hold_p99, s.hold_max);
    if (s.copied != pages || s.wrong != 0) {
      std::printf("sync uffd-wp copy WRONG: %llu of %zu pages copied, %llu not as at the freeze\n",
                  static_cast<unsigned long long>(s.copied), pages, static_cast<unsigned long long>(s.wrong));
      return 1;
    }
    std::printf("       writer undisturbed: %.1f M stores/s; the sync-uffd-wp copy checked: %zu pages, each as at the freeze\n",
                undisturbed / 1e6, pages);
    std::fflush(stdout);
    munmap(mem, bytes);
  }
  return 0;
}
