// events_bench: what the event queue costs and what it saves, side by side
// in one run.
//
//   events_bench [--gib 1,4] [--pages 20000] [--dir DIR] [--part all|faults|predump] [--log debug]
//
// 1. Fault costs (ns per page), without and with the BPF programs
//    attached, alternated (off, on, off, on, ...) so that both sides see the
//    same machine; median of the rounds of each side:
//    - the target's first write to an async-write-protected page (our agent
//      and a pre-dump armed it);
//    - another process's write fault that allocates nothing: a page of a
//      shared memfd, still in the page cache, mapped again after
//      MADV_DONTNEED (what the programs add to a fault, without the
//      tens-of-µs noise of a first touch of fresh memory on this machine);
//    - another process's first touch of fresh memory;
//    - another process's system call (getppid) and mmap+munmap pair (the
//      sys_exit and mmap_lock tracepoints).
// 2. Pre-dump time of an idle and of a 0.1%-written process of each size,
//    full scan vs events mode (an in-process reader kept across pre-dumps,
//    as `wpckpt iterate` does).
// Never run by ctest. Needs root (BPF); images go to DIR (default /var/tmp).
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "lib/agent/wpckpt_agent.h"
#include "lib/base/log.hpp"
#include "lib/checkpoint/memory_capture.hpp"
#include "lib/dump/pre_dump.hpp"
#include "tracker/events/event_reader.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
constexpr size_t kPage = 4096;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// ---- a target process driven over a pipe ----------------------------------

enum Command : uint32_t { kWrite = 1, kStartAgent, kTouchFresh, kTouchCached, kSyscalls, kMmaps, kQuit };
struct Request {
  uint32_t command;
  uint64_t count;
  uint64_t seed;
};
struct Reply {
  double seconds = 0;
  uint64_t n = 0;
  int64_t status = 0;
};

char* g_mem = nullptr;
size_t g_size = 0;

Reply serve(const Request& r) {
  Reply reply;
  switch (r.command) {
    case kWrite: {  // r.count distinct random pages, one word each
      size_t pages = g_size / kPage;
      std::mt19937_64 rng(r.seed);
      std::vector<size_t> chosen;
      std::vector<uint8_t> taken(pages);
      while (chosen.size() < std::min<uint64_t>(r.count, pages)) {
        size_t p = rng() % pages;
        if (!taken[p]) taken[p] = 1, chosen.push_back(p);
      }
      auto t0 = Clock::now();
      for (size_t p : chosen) *reinterpret_cast<volatile uint64_t*>(g_mem + p * kPage + 16) = r.seed ^ p;
      reply.seconds = since(t0);
      reply.n = chosen.size();
      break;
    }
    case kStartAgent: reply.status = -wpckpt_agent_start(); break;
    case kTouchFresh: {  // first touch of r.count fresh pages
      size_t len = r.count * kPage;
      char* p = static_cast<char*>(mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      if (p == MAP_FAILED) {
        reply.status = errno;
        break;
      }
      madvise(p, len, MADV_NOHUGEPAGE);
      auto t0 = Clock::now();
      for (size_t off = 0; off < len; off += kPage) p[off] = 1;
      reply.seconds = since(t0);
      reply.n = r.count;
      munmap(p, len);
      break;
    }
    case kTouchCached: {  // r.count write faults on page-cache pages: nothing allocated
      static char* shared = nullptr;
      static size_t shared_len = 0;
      size_t len = r.count * kPage;
      if (shared_len != len) {
        int fd = memfd_create("events-bench", MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, static_cast<off_t>(len)) != 0) {
          reply.status = errno;
          break;
        }
        shared = static_cast<char*>(mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
        close(fd);
        if (shared == MAP_FAILED) {
          reply.status = errno;
          break;
        }
        shared_len = len;
        std::memset(shared, 1, len);  // every page in the page cache
      }
      madvise(shared, len, MADV_DONTNEED);  // unmapped, still cached
      auto t0 = Clock::now();
      for (size_t off = 0; off < len; off += kPage) shared[off] = 2;
      reply.seconds = since(t0);
      reply.n = r.count;
      break;
    }
    case kSyscalls: {
      auto t0 = Clock::now();
      for (uint64_t i = 0; i < r.count; ++i) syscall(SYS_getppid);
      reply.seconds = since(t0);
      reply.n = r.count;
      break;
    }
    case kMmaps: {
      auto t0 = Clock::now();
      for (uint64_t i = 0; i < r.count; ++i) {
        void* p = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) munmap(p, kPage);
      }
      reply.seconds = since(t0);
      reply.n = r.count;
      break;
    }
    default: break;
  }
  return reply;
}

[[noreturn]] void target_main(size_t bytes, int in, int out) {
  g_size = bytes;
  if (bytes > 0) {
    g_mem = static_cast<char*>(mmap(nullptr, g_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (g_mem == MAP_FAILED) _exit(1);
    madvise(g_mem, g_size, MADV_NOHUGEPAGE);
    // Let the kernel populate (a fault per page costs ~17 us here), then a
    // small random header per page: compresses well, not a zero page.
    if (madvise(g_mem, g_size, MADV_POPULATE_WRITE) != 0) std::memset(g_mem, 0, g_size);
    uint64_t s = 88172645463325252ull;
    for (size_t off = 0; off < g_size; off += kPage) {
      auto* w = reinterpret_cast<uint64_t*>(g_mem + off);
      for (int i = 0; i < 8; ++i) s ^= s << 13, s ^= s >> 7, s ^= s << 17, w[i] = s;
    }
  }
  Reply ready;
  if (write(out, &ready, sizeof ready) != sizeof ready) _exit(1);
  Request r;
  while (read(in, &r, sizeof r) == sizeof r && r.command != kQuit) {
    Reply reply = serve(r);
    if (write(out, &reply, sizeof reply) != sizeof reply) _exit(1);
  }
  _exit(0);
}

class Target {
 public:
  explicit Target(size_t bytes) {
    int to[2], from[2];
    if (pipe(to) != 0 || pipe(from) != 0) std::exit(1);
    pid_ = fork();
    if (pid_ == 0) {
      close(to[1]);
      close(from[0]);
      target_main(bytes, to[0], from[1]);
    }
    close(to[0]);
    close(from[1]);
    out_ = to[1];
    in_ = from[0];
    Reply ready;
    if (read(in_, &ready, sizeof ready) != sizeof ready) std::fprintf(stderr, "target failed\n"), std::exit(1);
  }
  ~Target() {
    Request q{kQuit, 0, 0};
    if (write(out_, &q, sizeof q) < 0) kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    close(out_);
    close(in_);
  }
  Reply ask(Command c, uint64_t count = 0, uint64_t seed = 0) {
    Request r{c, count, seed};
    Reply reply;
    if (write(out_, &r, sizeof r) != sizeof r || read(in_, &reply, sizeof reply) != sizeof reply) {
      std::fprintf(stderr, "events_bench: target died\n");
      std::exit(1);
    }
    return reply;
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int out_ = -1, in_ = -1;
};

// ---- pre-dumps -------------------------------------------------------------

struct Dump {
  wpckpt::checkpoint::CaptureStats stats;
  double seconds = 0;
};

Dump pre_dump(pid_t pid, const fs::path& dir, const std::optional<fs::path>& parent,
              wpckpt::checkpoint::EventTracking* events) {
  wpckpt::dump::PreDumpRequest r;
  r.pid = pid;
  r.images_dir = dir;
  r.prev_images_dir = parent;
  r.events = events;
  auto report = wpckpt::dump::pre_dump_process(r);
  if (!report) std::fprintf(stderr, "pre-dump: %s\n", report.error().message().c_str()), std::exit(1);
  return {report->capture, report->seconds};
}

struct Chain {
  fs::path root;
  std::optional<fs::path> parent;
  int n = 0;
  Dump next(pid_t pid, wpckpt::checkpoint::EventTracking* events) {
    fs::path dir = root / std::to_string(++n);
    Dump d = pre_dump(pid, dir, parent, events);
    parent = dir;
    return d;
  }
};

std::vector<double> parse_list(const char* s) {
  std::vector<double> out;
  for (char* p = const_cast<char*>(s); *p;) {
    out.push_back(std::strtod(p, &p));
    if (*p == ',') ++p;
  }
  return out;
}

std::unique_ptr<wpckpt::tracker::EventReader> start_reader(pid_t pid) {
  auto r = wpckpt::tracker::EventReader::start(pid);
  if (!r) {
    std::fprintf(stderr, "events_bench: %s\n", r.error().message().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

// ---- 1. fault costs ----------------------------------------------------------

void bench_faults(uint64_t pages, const fs::path& root) {
  constexpr int kAlternations = 3, kRoundsEach = 3;
  std::printf("== fault costs (ns; BPF off and on alternated %d times, %d rounds each; median; %llu pages per "
              "round) ==\n",
              kAlternations, kRoundsEach, static_cast<unsigned long long>(pages));
  Target target(pages * kPage * 4);
  Target other(0);
  if (target.ask(kStartAgent).status != 0) std::printf("agent failed\n"), std::exit(1);
  Chain chain{root / ("events-bench-faults-" + std::to_string(getpid()))};
  fs::create_directories(chain.root);
  uint64_t seed = 1;
  constexpr size_t kKinds = 5;
  std::vector<double> samples[2][kKinds];  // [with BPF][kind]: ns per operation, one per round
  uint64_t faults = 0, lost = 0, target_writes = 0;
  auto rounds = [&](bool with_bpf) {
    std::unique_ptr<wpckpt::tracker::EventReader> reader;
    if (with_bpf) reader = start_reader(target.pid());
    auto add = [&](size_t kind, const Reply& r) {
      samples[with_bpf][kind].push_back(r.seconds * 1e9 / static_cast<double>(r.n));
    };
    for (int round = 0; round < kRoundsEach; ++round) {
      chain.next(target.pid(), nullptr);  // (re-)arms every page written since
      Reply w = target.ask(kWrite, pages, seed++);
      add(0, w);
      if (with_bpf) target_writes += w.n;
      add(1, other.ask(kTouchCached, pages));
      add(2, other.ask(kTouchFresh, pages));
      add(3, other.ask(kSyscalls, 200000));
      add(4, other.ask(kMmaps, 20000));
    }
    if (reader) {
      wpckpt::tracker::EventWindow win = reader->take_window();
      faults += win.faults;
      lost += win.lost;
    }
  };
  other.ask(kTouchCached, pages);  // its memfd made and cached before the first round
  for (int i = 0; i < kAlternations; ++i) {
    rounds(false);
    rounds(true);
  }
  fs::remove_all(chain.root);
  const char* names[kKinds] = {"target: write to an async-WP page", "other process: write fault, no allocation",
                               "other process: first touch of a page", "other process: getppid()",
                               "other process: mmap+munmap"};
  std::printf("  %-42s %10s %10s %10s %7s\n", "", "no BPF", "BPF", "added", "ratio");
  for (size_t k = 0; k < kKinds; ++k) {
    double off = median(samples[0][k]), on = median(samples[1][k]);
    std::printf("  %-42s %10.0f %10.0f %10.0f %7.2f\n", names[k], off, on, on - off, on / off);
  }
  std::printf("  records: %llu write faults seen for %llu target writes, %llu lost\n",
              static_cast<unsigned long long>(faults), static_cast<unsigned long long>(target_writes),
              static_cast<unsigned long long>(lost));
}

// ---- 2. pre-dump time, full vs events ------------------------------------------

void bench_predump(double gib, const fs::path& root) {
  size_t bytes = static_cast<size_t>(gib * (1ull << 30));
  size_t pages = bytes / kPage;
  uint64_t written = pages / 1000;  // 0.1%
  std::printf("\n== pre-dump of %.0f GiB (%zu pages), idle and %llu pages (0.1%%) written ==\n", gib, pages,
              static_cast<unsigned long long>(written));
  Target t(bytes);
  if (t.ask(kStartAgent).status != 0) std::printf("agent failed\n"), std::exit(1);
  Chain chain{root / ("events-bench-" + std::to_string(getpid()))};
  fs::remove_all(chain.root);
  fs::create_directories(chain.root);
  auto first_t0 = Clock::now();
  chain.next(t.pid(), nullptr);
  std::printf("  first pre-dump (everything): %.2f s\n", since(first_t0));
  uint64_t seed = 100;
  struct Figures {
    double idle = 0, written = 0, idle_scan = 0, written_scan = 0;
    uint64_t idle_scanned = 0, written_scanned = 0, written_pages = 0;
    std::string mode_idle, mode_written;
  };
  auto run = [&](wpckpt::checkpoint::EventTracking* events) {
    Figures f;
    chain.next(t.pid(), events);  // settles (and, with events, makes the boundary)
    std::vector<double> idle, wr, idle_scan, wr_scan;
    for (int i = 0; i < 3; ++i) {
      Dump d = chain.next(t.pid(), events);
      idle.push_back(d.seconds);
      idle_scan.push_back(d.stats.scan_seconds);
      f.idle_scanned = d.stats.pages_scanned;
      f.mode_idle = d.stats.scan_mode;
    }
    for (int i = 0; i < 3; ++i) {
      t.ask(kWrite, written, seed++);
      Dump d = chain.next(t.pid(), events);
      wr.push_back(d.seconds);
      wr_scan.push_back(d.stats.scan_seconds);
      f.written_scanned = d.stats.pages_scanned;
      f.written_pages = d.stats.pages_written;
      f.mode_written = d.stats.scan_mode;
    }
    f.idle = median(idle);
    f.written = median(wr);
    f.idle_scan = median(idle_scan);
    f.written_scan = median(wr_scan);
    return f;
  };
  Figures full = run(nullptr);
  auto reader = start_reader(t.pid());
  wpckpt::checkpoint::EventTracking tracking;
  tracking.reader = reader.get();
  Figures ev = run(&tracking);
  reader.reset();
  fs::remove_all(chain.root);
  std::printf("  end to end (scan, copy, compress, commit):\n");
  std::printf("  %-22s %12s %12s %8s   %s\n", "", "full scan", "events", "ratio", "pages scanned (full / events)");
  std::printf("  %-22s %9.2f ms %9.2f ms %7.1fx   %llu / %llu  [%s/%s]\n", "idle", full.idle * 1e3, ev.idle * 1e3,
              full.idle / ev.idle, static_cast<unsigned long long>(full.idle_scanned),
              static_cast<unsigned long long>(ev.idle_scanned), full.mode_idle.c_str(), ev.mode_idle.c_str());
  std::printf("  %-22s %9.2f ms %9.2f ms %7.1fx   %llu / %llu  [%s/%s], %llu pages stored\n", "0.1% written",
              full.written * 1e3, ev.written * 1e3, full.written / ev.written,
              static_cast<unsigned long long>(full.written_scanned), static_cast<unsigned long long>(ev.written_scanned),
              full.mode_written.c_str(), ev.mode_written.c_str(), static_cast<unsigned long long>(ev.written_pages));
  std::printf("  the scan phase alone (maps, registration check, PAGEMAP_SCAN):\n");
  std::printf("  %-22s %9.3f ms %9.3f ms %7.1fx\n", "idle", full.idle_scan * 1e3, ev.idle_scan * 1e3,
              full.idle_scan / ev.idle_scan);
  std::printf("  %-22s %9.3f ms %9.3f ms %7.1fx\n", "0.1% written", full.written_scan * 1e3, ev.written_scan * 1e3,
              full.written_scan / ev.written_scan);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<double> sizes = {1, 4};
  uint64_t pages = 20000;
  fs::path root = "/var/tmp";
  std::string part = "all";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--gib") sizes = parse_list(argv[i + 1]);
    else if (a == "--pages") pages = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--dir") root = argv[i + 1];
    else if (a == "--part") part = argv[i + 1];
    else if (a == "--log") wpckpt::log::set_level(wpckpt::log::Level::Debug);
  }
  if (part == "all" || part == "faults") bench_faults(pages, root);
  if (part == "all" || part == "predump")
    for (double s : sizes) bench_predump(s, root);
}
