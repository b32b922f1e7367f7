// snapshot_mechanisms_bench: the two ways to keep a process's memory as it
// was at one instant while the process runs on, measured side by side in one
// run on the same populated memory (issue 14 item 3, docs/KERNEL.md §17).
//
//   snapshot_mechanisms_bench [--gib 1,4] [--repeat 3] [--gap-us 20] [--baseline-s 1]
//
// Per size N, this process populates N GiB of anonymous 4 KiB pages
// (MADV_NOHUGEPAGE: THP is `madvise` here, so programs' heaps are 4 KiB
// pages) and starts a writer thread: it writes a global sequence number into
// the first and last word of a random page, then spins `gap` µs (its "work"),
// and so on. Its iterations per second are its speed; each write that takes
// more than 2 µs is recorded with its latency.
//
//  (a) fork-cow: the writer is paused (the freeze, as wpckpt stops the
//      process), fork() is timed (that is the frozen window: copy_page_range),
//      the writer resumes, and the copy side reads every page of the child
//      through /proc/CHILD/mem (as wpckpt reads its copy), 1 MiB at a time.
//  (b) sync-wp: the freeze is UFFDIO_REGISTER(MODE_WP) + UFFDIO_WRITEPROTECT
//      of the whole region. Then a copier thread reads every page through
//      /proc/self/mem; a handler thread serves each write fault by copying
//      the page first (unless the copier did) and then clearing its
//      write-protection (which wakes the writer). Nothing else is unprotected
//      until the copy is complete; then the rest is unprotected at once.
//  (c) the cost of UFFDIO_WRITEPROTECT alone on the same memory (set and
//      clear), for the goal "frozen ≤ 10 ms + WP cost".
//
// Correctness: while the writer is paused, the first word of every page is
// recorded (outside the timed window); each copied page must hold exactly
// that value in its first and last word — a copy holding any value written
// after the freeze is counted as wrong, and the bench exits 1 if any is.
// Never run by ctest. Reference rates printed beside: first-touch fault and
// a single 4 KiB pread of /proc/self/mem.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "lib/base/uapi/userfaultfd.hpp"

namespace {

namespace u = wpckpt::uapi;
using Clock = std::chrono::steady_clock;
constexpr size_t kPage = 4096;
constexpr size_t kWordsPerPage = kPage / 8;
constexpr size_t kChunk = 1 << 20;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
double ms(double s) { return s * 1e3; }

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "snapshot_mechanisms_bench: %s: %s\n", what, std::strerror(errno));
  std::exit(2);
}

// --- the writer -----------------------------------------------------------

struct SlowWrite {
  double at;       // seconds since the writer's epoch
  double latency;  // seconds
};

struct Writer {
  uint64_t* mem = nullptr;
  size_t pages = 0;
  double gap_s = 20e-6;
  Clock::time_point epoch = Clock::now();
  std::atomic<uint64_t> seq{0};         // last sequence number written
  std::atomic<uint64_t> iterations{0};  // writes done
  std::atomic<bool> pause_req{false}, paused{false}, stop{false};
  std::vector<SlowWrite> slow;  // only the writer appends; read after a pause
  std::thread thread;

  void run() {
    std::mt19937_64 rng(42);
    slow.reserve(8u << 20);
    while (!stop.load(std::memory_order_relaxed)) {
      if (pause_req.load(std::memory_order_acquire)) {
        paused.store(true, std::memory_order_release);
        while (pause_req.load(std::memory_order_acquire)) {
        }
        paused.store(false, std::memory_order_release);
      }
      uint64_t* p = mem + (rng() % pages) * kWordsPerPage;
      uint64_t s = seq.load(std::memory_order_relaxed) + 1;
      auto t0 = Clock::now();
      // The first store takes the fault (COW or uffd-wp); both words are one
      // page, so a copy either has the old pair or (wrongly) the new one.
      reinterpret_cast<volatile uint64_t*>(p)[0] = s;
      reinterpret_cast<volatile uint64_t*>(p)[kWordsPerPage - 1] = s;
      auto t1 = Clock::now();
      seq.store(s, std::memory_order_release);
      double lat = std::chrono::duration<double>(t1 - t0).count();
      if (lat > 2e-6 && slow.size() < slow.capacity())
        slow.push_back({std::chrono::duration<double>(t1 - epoch).count(), lat});
      iterations.fetch_add(1, std::memory_order_relaxed);
      auto until = t1 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap_s));
      while (Clock::now() < until) {
      }
    }
  }
  void start() { thread = std::thread([this] { run(); }); }
  void pause() {
    pause_req.store(true, std::memory_order_release);
    while (!paused.load(std::memory_order_acquire)) {
    }
  }
  void resume() {
    pause_req.store(false, std::memory_order_release);
    while (paused.load(std::memory_order_acquire)) {
    }
  }
  double now() const { return since(epoch); }
};

// Writer speed over a window: iterations per second.
struct Window {
  double t0, t1;
  uint64_t it0, it1;
  double rate() const { return (it1 - it0) / std::max(t1 - t0, 1e-9); }
};
Window measure_window(Writer& w, double seconds) {
  Window win{w.now(), 0, w.iterations.load(), 0};
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  win.t1 = w.now();
  win.it1 = w.iterations.load();
  return win;
}

struct Lat {
  size_t n = 0;
  double p50 = 0, p99 = 0, max = 0;
};
Lat slow_writes(Writer& w, double t0, double t1) {
  // Called while the writer is paused: its vector does not grow meanwhile.
  std::vector<double> v;
  for (const auto& s : w.slow)
    if (s.at >= t0 && s.at <= t1) v.push_back(s.latency);
  Lat l;
  l.n = v.size();
  if (v.empty()) return l;
  std::sort(v.begin(), v.end());
  l.p50 = v[v.size() / 2];
  l.p99 = v[std::min(v.size() - 1, v.size() * 99 / 100)];
  l.max = v.back();
  return l;
}

// --- the instant and its check ---------------------------------------------

// The first word of every page at the freeze (the writer is paused).
std::vector<uint64_t> record_instant(const uint64_t* mem, size_t pages) {
  std::vector<uint64_t> first(pages);
  for (size_t p = 0; p < pages; ++p) first[p] = mem[p * kWordsPerPage];
  return first;
}

struct Check {
  std::atomic<uint64_t> wrong{0}, after_freeze{0}, pages{0};
  void page(const uint64_t* copy, uint64_t expected, uint64_t freeze_seq) {
    pages.fetch_add(1, std::memory_order_relaxed);
    if (copy[0] != expected || copy[kWordsPerPage - 1] != expected) wrong.fetch_add(1);
    if (copy[0] > freeze_seq || copy[kWordsPerPage - 1] > freeze_seq) after_freeze.fetch_add(1);
  }
};

void pread_all(int fd, void* buf, size_t len, uint64_t addr) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, static_cast<char*>(buf) + done, len - done, static_cast<off_t>(addr + done));
    if (n <= 0) die("pread /proc/PID/mem");
    done += static_cast<size_t>(n);
  }
}

// --- userfaultfd -------------------------------------------------------------

int open_uffd() {
  int fd = static_cast<int>(syscall(u::kNrUserfaultfd, O_CLOEXEC | O_NONBLOCK | u::kUffdUserModeOnly));
  if (fd < 0) die("userfaultfd");
  u::UffdioApi api{u::kUffdApi, 0, 0};
  if (ioctl(fd, u::kUffdioApi, &api) != 0) die("UFFDIO_API");
  return fd;
}
void wp(int uffd, uint64_t start, uint64_t len, bool on) {
  u::UffdioWriteprotect w{{start, len}, on ? u::kWriteprotectModeWp : 0};
  if (ioctl(uffd, u::kUffdioWriteprotect, &w) != 0) die("UFFDIO_WRITEPROTECT");
}

// --- results ----------------------------------------------------------------

struct Result {
  double frozen_s = 0, copy_s = 0, base_rate = 0, copy_rate = 0;
  double register_s = 0, unprotect_rest_s = 0;
  uint64_t held = 0;
  Lat lat;
  uint64_t pages = 0, wrong = 0, after_freeze = 0;
};

Result run_fork(Writer& w, uint64_t* mem, size_t bytes, double baseline_s) {
  Result r;
  size_t pages = bytes / kPage;
  r.base_rate = measure_window(w, baseline_s).rate();
  w.pause();
  auto instant = record_instant(mem, pages);
  uint64_t freeze_seq = w.seq.load();
  auto t = Clock::now();
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    for (;;) pause();  // the copy never runs: it is only read
  }
  r.frozen_s = since(t);
  w.resume();
  Window win{w.now(), 0, w.iterations.load(), 0};
  auto tc = Clock::now();
  int fd = open(("/proc/" + std::to_string(child) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open /proc/CHILD/mem");
  std::vector<uint64_t> buf(kChunk / 8);
  Check check;
  for (size_t off = 0; off < bytes; off += kChunk) {
    size_t len = std::min(kChunk, bytes - off);
    pread_all(fd, buf.data(), len, reinterpret_cast<uint64_t>(mem) + off);
    for (size_t p = 0; p < len / kPage; ++p)
      check.page(buf.data() + p * kWordsPerPage, instant[off / kPage + p], freeze_seq);
  }
  r.copy_s = since(tc);
  win.t1 = w.now();
  win.it1 = w.iterations.load();
  close(fd);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  w.pause();
  r.lat = slow_writes(w, win.t0, win.t1);
  w.resume();
  r.copy_rate = win.rate();
  r.pages = check.pages;
  r.wrong = check.wrong;
  r.after_freeze = check.after_freeze;
  return r;
}

Result run_sync_wp(Writer& w, uint64_t* mem, size_t bytes, double baseline_s) {
  Result r;
  size_t pages = bytes / kPage;
  uint64_t start = reinterpret_cast<uint64_t>(mem);
  int uffd = open_uffd();
  int selfmem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
  if (selfmem < 0) die("open /proc/self/mem");
  // 0 = not copied, 1 = being copied, 2 = copied. A page is unprotected only
  // in state 2, so no copy can see a write made after the freeze.
  std::unique_ptr<std::atomic<uint8_t>[]> state(new std::atomic<uint8_t>[pages]);
  for (size_t p = 0; p < pages; ++p) state[p].store(0, std::memory_order_relaxed);
  Check check;
  std::vector<uint64_t> instant;
  uint64_t freeze_seq = 0;

  r.base_rate = measure_window(w, baseline_s).rate();
  w.pause();
  instant = record_instant(mem, pages);
  freeze_seq = w.seq.load();
  auto t = Clock::now();
  u::UffdioRegister reg{{start, bytes}, u::kRegisterModeWp, 0};
  if (ioctl(uffd, u::kUffdioRegister, &reg) != 0) die("UFFDIO_REGISTER");
  r.register_s = since(t);
  wp(uffd, start, bytes, true);
  r.frozen_s = since(t);

  // Copy page p (if nobody did) and return when it is copied.
  auto claim_copy = [&](size_t p, uint64_t* buf) {
    uint8_t expect = 0;
    if (state[p].compare_exchange_strong(expect, 1)) {
      pread_all(selfmem, buf, kPage, start + p * kPage);
      check.page(buf, instant[p], freeze_seq);
      state[p].store(2, std::memory_order_release);
      return;
    }
    while (state[p].load(std::memory_order_acquire) != 2) {
    }
  };

  int stopfd = eventfd(0, EFD_CLOEXEC);
  std::atomic<uint64_t> held{0};
  std::thread handler([&] {
    std::vector<uint64_t> buf(kWordsPerPage);
    pollfd fds[2] = {{uffd, POLLIN, 0}, {stopfd, POLLIN, 0}};
    for (;;) {
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        die("poll");
      }
      if (fds[1].revents) return;
      u::UffdMsg msgs[16];
      ssize_t n = read(uffd, msgs, sizeof msgs);
      if (n < 0) {
        if (errno == EAGAIN) continue;
        die("read uffd");
      }
      for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof(u::UffdMsg)); ++i) {
        if (msgs[i].event != u::kEventPagefault) continue;
        uint64_t addr = msgs[i].arg.pagefault.address & ~(kPage - 1);
        claim_copy((addr - start) / kPage, buf.data());
        wp(uffd, addr, kPage, false);  // clears the bit and wakes the writer
        held.fetch_add(1);
      }
    }
  });

  w.resume();
  Window win{w.now(), 0, w.iterations.load(), 0};
  auto tc = Clock::now();
  {
    std::vector<uint64_t> buf(kChunk / 8);
    for (size_t p0 = 0; p0 < pages; p0 += kChunk / kPage) {
      size_t n = std::min(kChunk / kPage, pages - p0);
      // Claim a run of pages not yet copied and read it in one pread.
      size_t i = 0;
      while (i < n) {
        uint8_t expect = 0;
        if (!state[p0 + i].compare_exchange_strong(expect, 1)) {
          ++i;
          continue;
        }
        size_t j = i + 1;
        while (j < n) {
          uint8_t e = 0;
          if (!state[p0 + j].compare_exchange_strong(e, 1)) break;
          ++j;
        }
        pread_all(selfmem, buf.data(), (j - i) * kPage, start + (p0 + i) * kPage);
        for (size_t k = i; k < j; ++k) {
          check.page(buf.data() + (k - i) * kWordsPerPage, instant[p0 + k], freeze_seq);
          state[p0 + k].store(2, std::memory_order_release);
        }
        i = j;
      }
    }
  }
  r.copy_s = since(tc);
  win.t1 = w.now();
  win.it1 = w.iterations.load();
  auto tu = Clock::now();
  wp(uffd, start, bytes, false);
  r.unprotect_rest_s = since(tu);
  uint64_t one = 1;
  if (write(stopfd, &one, sizeof one) != sizeof one) die("eventfd");
  handler.join();
  u::UffdioRange range{start, bytes};
  if (ioctl(uffd, u::kUffdioUnregister, &range) != 0) die("UFFDIO_UNREGISTER");
  close(stopfd);
  close(uffd);
  close(selfmem);
  w.pause();
  r.lat = slow_writes(w, win.t0, win.t1);
  w.resume();
  r.copy_rate = win.rate();
  r.held = held;
  r.pages = check.pages;
  r.wrong = check.wrong;
  r.after_freeze = check.after_freeze;
  return r;
}

// (c) UFFDIO_WRITEPROTECT alone: set and clear on the whole region.
struct WpCost {
  double set_s = 0, clear_s = 0;
};
WpCost run_wp_alone(Writer& w, uint64_t* mem, size_t bytes) {
  WpCost c;
  uint64_t start = reinterpret_cast<uint64_t>(mem);
  int uffd = open_uffd();
  u::UffdioRegister reg{{start, bytes}, u::kRegisterModeWp, 0};
  w.pause();  // no write may fault: nobody serves this uffd
  if (ioctl(uffd, u::kUffdioRegister, &reg) != 0) die("UFFDIO_REGISTER");
  auto t = Clock::now();
  wp(uffd, start, bytes, true);
  c.set_s = since(t);
  t = Clock::now();
  wp(uffd, start, bytes, false);
  c.clear_s = since(t);
  u::UffdioRange range{start, bytes};
  if (ioctl(uffd, u::kUffdioUnregister, &range) != 0) die("UFFDIO_UNREGISTER");
  close(uffd);
  w.resume();
  return c;
}

std::vector<double> parse_list(const char* s) {
  std::vector<double> v;
  for (const char* p = s; *p;) {
    char* end;
    v.push_back(std::strtod(p, &end));
    p = *end == ',' ? end + 1 : end;
    if (end == p && *p) break;
  }
  return v;
}

void print_lat(const char* name, const Result& r) {
  std::printf("  %-9s writes >2us in copy: %7zu  p50 %7.1f us  p99 %7.1f us  max %8.1f us\n", name, r.lat.n,
              r.lat.p50 * 1e6, r.lat.p99 * 1e6, r.lat.max * 1e6);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<double> gibs{1, 4};
  double gap_us = 20, baseline_s = 1;
  int repeat = 3;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--gib" && i + 1 < argc) gibs = parse_list(argv[++i]);
    else if (a == "--gap-us" && i + 1 < argc) gap_us = std::atof(argv[++i]);
    else if (a == "--baseline-s" && i + 1 < argc) baseline_s = std::atof(argv[++i]);
    else if (a == "--repeat" && i + 1 < argc) repeat = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: snapshot_mechanisms_bench [--gib 1,4] [--repeat 3] [--gap-us 20] [--baseline-s 1]\n");
      return 2;
    }
  }
  bool all_exact = true;
  std::printf("snapshot_mechanisms_bench: writer = random-page write + %.0f us spin; %u CPUs\n", gap_us,
              std::thread::hardware_concurrency());
  for (double gib : gibs) {
    size_t bytes = static_cast<size_t>(gib * (1ull << 30));
    size_t pages = bytes / kPage;
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) die("mmap");
    madvise(m, bytes, MADV_NOHUGEPAGE);
    auto* mem = static_cast<uint64_t*>(m);
    auto t = Clock::now();
    for (size_t p = 0; p < pages; ++p) {
      uint64_t* pg = mem + p * kWordsPerPage;
      pg[0] = 0;
      for (size_t i = 1; i + 1 < kWordsPerPage; i += 64) pg[i] = p * 131 + i;
      pg[kWordsPerPage - 1] = 0;
    }
    double fault_us = since(t) / pages * 1e6;
    // Reference: one 4 KiB pread of /proc/self/mem (the handler's copy).
    int selfmem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
    std::vector<uint64_t> one(kWordsPerPage);
    t = Clock::now();
    for (size_t i = 0; i < 20000; ++i)
      pread_all(selfmem, one.data(), kPage, reinterpret_cast<uint64_t>(mem) + (i * 7919 % pages) * kPage);
    double pread_us = since(t) / 20000 * 1e6;
    close(selfmem);

    Writer w;
    w.mem = mem;
    w.pages = pages;
    w.gap_s = gap_us * 1e-6;
    w.start();
    std::vector<WpCost> wps;
    std::vector<Result> forks, syncs;
    wps.push_back(run_wp_alone(w, mem, bytes));
    for (int i = 0; i < repeat; ++i) {
      // Alternated, so that a neighbour's load falls on both alike.
      forks.push_back(run_fork(w, mem, bytes, baseline_s));
      syncs.push_back(run_sync_wp(w, mem, bytes, baseline_s));
      wps.push_back(run_wp_alone(w, mem, bytes));
    }
    w.stop = true;
    w.thread.join();
    munmap(m, bytes);

    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    std::vector<double> wp_set, wp_clear;
    for (const auto& c : wps) wp_set.push_back(c.set_s), wp_clear.push_back(c.clear_s);
    double wp_cost = median(wp_set);
    std::printf("\n== %g GiB (%zu pages), %d runs each ==  reference: first-touch fault+fill %.2f us/page, "
                "4 KiB pread /proc/self/mem %.2f us\n",
                gib, pages, repeat, fault_us, pread_us);
    std::printf("  (c) UFFDIO_WRITEPROTECT of the whole region:");
    for (size_t i = 0; i < wps.size(); ++i) std::printf(" %.1f/%.1f", ms(wps[i].set_s), ms(wps[i].clear_s));
    std::printf(" ms (set/clear); median set %.1f ms = %.1f ms/GiB\n", ms(wp_cost), ms(wp_cost) / gib);
    std::printf("  %-9s %10s %8s %9s %12s %12s %9s %8s %s\n", "mechanism", "frozen_ms", "copy_s", "cp_MiB/s",
                "writer_base/s", "writer_copy/s", "slowdown", "held", "exact");
    auto row = [&](const char* name, const Result& r) {
      bool exact = r.wrong == 0 && r.after_freeze == 0 && r.pages == pages;
      all_exact = all_exact && exact;
      std::printf("  %-9s %10.1f %8.2f %9.0f %12.0f %12.0f %8.2fx %8lu %s (%lu wrong, %lu after freeze, %lu/%zu pages)\n",
                  name, ms(r.frozen_s), r.copy_s, gib * 1024 / r.copy_s, r.base_rate, r.copy_rate,
                  r.base_rate / std::max(r.copy_rate, 1.0), static_cast<unsigned long>(r.held), exact ? "yes" : "NO",
                  static_cast<unsigned long>(r.wrong), static_cast<unsigned long>(r.after_freeze),
                  static_cast<unsigned long>(r.pages), pages);
    };
    for (int i = 0; i < repeat; ++i) {
      row("fork-cow", forks[i]);
      row("sync-wp", syncs[i]);
    }
    for (int i = 0; i < repeat; ++i) {
      print_lat("fork-cow", forks[i]);
      print_lat("sync-wp", syncs[i]);
      std::printf("  %-9s freeze = register %.2f ms + WP %.1f ms; unprotect the rest after the copy %.1f ms "
                  "(process running)\n",
                  "sync-wp", ms(syncs[i].register_s), ms(syncs[i].frozen_s - syncs[i].register_s),
                  ms(syncs[i].unprotect_rest_s));
    }
    auto med = [&](const std::vector<Result>& rs, auto f) {
      std::vector<double> v;
      for (const auto& r : rs) v.push_back(f(r));
      return median(v);
    };
    auto frozen = [](const Result& r) { return r.frozen_s; };
    auto copy = [](const Result& r) { return r.copy_s; };
    auto slow = [](const Result& r) { return r.base_rate / std::max(r.copy_rate, 1.0); };
    auto p99 = [](const Result& r) { return r.lat.p99; };
    auto held = [](const Result& r) { return static_cast<double>(r.held); };
    double ff = med(forks, frozen), sf = med(syncs, frozen);
    std::printf("  MEDIANS %g GiB: frozen fork %.1f ms (%.1f ms/GiB), sync-wp %.1f ms (%.1f ms/GiB), WP alone %.1f ms; "
                "fork/sync-wp frozen %.2f; fork frozen / (10 ms + WP) = %.2f; sync-wp frozen / (10 ms + WP) = %.2f\n",
                gib, ms(ff), ms(ff) / gib, ms(sf), ms(sf) / gib, ms(wp_cost), ff / sf, ff / (0.010 + wp_cost),
                sf / (0.010 + wp_cost));
    std::printf("  MEDIANS %g GiB: copy fork %.2f s, sync-wp %.2f s; writer slowdown fork %.2fx, sync-wp %.2fx; "
                "slow-write p99 fork %.1f us, sync-wp %.1f us; sync-wp writes held %.0f\n",
                gib, med(forks, copy), med(syncs, copy), med(forks, slow), med(syncs, slow), med(forks, p99) * 1e6,
                med(syncs, p99) * 1e6, med(syncs, held));
    std::fflush(stdout);
  }
  return all_exact ? 0 : 1;
}
