// Lazy restore against eager restore, side by side in one run, as users run
// them: `wpckpt run -- lazy_pages --bench` fills N GiB (half of each page
// data, zstd ratio ~2), `wpckpt dump` writes it, then the same image is
// restored twice: eagerly and with --lazy. Per size it prints
//  - time to running (restore start -> the process runs; goal <= 50 ms for
//    --lazy, independent of size) for both,
//  - time until all memory is in for --lazy, and its rate (goal >= 1 GB/s),
//  - urgent-fault latency p50/p99 while the background pass runs: the
//    pager's (message read -> page in) and the process's own (an access that
//    found its page missing, measured by the workload around the access),
// with the machine's own first-touch fault cost beside them; and the lazy
// restore again from `page-server --lazy` over loopback TLS (post-copy over
// the network), remote/local ratios beside.
//
//   lazy_restore_bench [--gib 1,8] [--dir /var/tmp] [--pause-us 20]
// wpckpt and the workload are found next to this binary's build tree
// (override with WPCKPT=... and LAZY_PAGES=...).
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "lazy_restore_bench: %s\n", what.c_str());
  std::exit(1);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

pid_t spawn(const std::vector<std::string>& argv, const fs::path& out, const fs::path& err) {
  pid_t pid = fork();
  if (pid == 0) {
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600), e = open(err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    dup2(o, 1);
    dup2(e, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

int run(const std::vector<std::string>& argv, const fs::path& out, const fs::path& err) {
  int status = 0;
  waitpid(spawn(argv, out, err), &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

template <typename Pred>
bool wait_for(Pred pred, double seconds) {
  auto end = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

// The last "TICK n ops missing p50 p99" line of lazy_pages after `from` bytes.
struct Tick {
  uint64_t ops = 0, missing = 0;
  double p50 = 0, p99 = 0;
};
Tick last_tick(const std::string& text, size_t from) {
  Tick t;
  std::istringstream in(from < text.size() ? text.substr(from) : "");
  std::string line;
  while (std::getline(in, line)) {
    unsigned long n;
    if (std::sscanf(line.c_str(), "TICK %lu %lu %lu %lf %lf", &n, &t.ops, &t.missing, &t.p50, &t.p99) != 5) continue;
  }
  return t;
}

// Microseconds per first touch of fresh anonymous memory on this machine now.
double first_touch_us() {
  const size_t bytes = 64 << 20;
  auto* p = static_cast<char*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  madvise(p, bytes, MADV_NOHUGEPAGE);
  auto t = Clock::now();
  for (size_t i = 0; i < bytes; i += 4096) p[i] = 1;
  double us = std::chrono::duration<double, std::micro>(Clock::now() - t).count() / (bytes / 4096);
  munmap(p, bytes);
  return us;
}

struct Lazy {
  double running = 0, complete = 0, gbps = 0;
  double pager_p50 = 0, pager_p99 = 0, proc_p50 = 0, proc_p99 = 0;
  uint64_t faults = 0, prefetched = 0, missing = 0;
};

struct Row {
  double eager_running = 0, eager_fill_gbps = 0;
  Lazy local, remote;  // from the image directory; from `page-server --lazy` over loopback TLS
};

struct Tools {
  std::string wpckpt, workload;
  unsigned pause_us = 20;
};

// One restore of `img`; returns its --json document once printed (lazy: at
// the end of the lazy phase), then kills the restored process.
nlohmann::json restore_once(const Tools& tools, const fs::path& img, pid_t pid, bool lazy, const fs::path& dir,
                            const std::vector<std::string>& extra = {}) {
  fs::path out = dir / (lazy ? "lazy.json" : "eager.json"), err = dir / "restore.err";
  fs::remove(out);
  std::vector<std::string> argv = {tools.wpckpt, "restore", "-D", img.string(), "--json"};
  if (lazy) argv.push_back("--lazy");
  argv.insert(argv.end(), extra.begin(), extra.end());
  pid_t r = spawn(argv, out, err);
  if (!wait_for([&] { return slurp(out).find('}') != std::string::npos; }, 600)) die("restore printed nothing: " + slurp(err));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto doc = nlohmann::json::parse(slurp(out), nullptr, false);
  kill(pid, SIGKILL);
  waitpid(r, nullptr, 0);
  if (!doc.is_object() || doc.contains("error")) die("restore failed: " + slurp(out) + slurp(err));
  return doc;
}

Row measure(const Tools& tools, uint64_t gib, const fs::path& base) {
  fs::path dir = base / ("lazy-bench-" + std::to_string(getpid()) + "-" + std::to_string(gib));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::path out = dir / "workload.out", err = dir / "workload.err";
  pid_t w = spawn({tools.wpckpt, "run", "--", tools.workload, "--mib", std::to_string(gib * 1024), "--threads", "1",
                   "--bench", "--pause-us", std::to_string(tools.pause_us)},
                  out, err);
  if (!wait_for([&] { return slurp(out).find("READY") != std::string::npos; }, 900)) die("workload: " + slurp(err));
  fs::path img = dir / "dump";
  if (run({tools.wpckpt, "dump", "-t", std::to_string(w), "-D", img.string()}, dir / "dump.out", dir / "dump.err") != 0) {
    kill(w, SIGKILL);  // the dump refused it: it still runs
    die("dump: " + slurp(dir / "dump.err"));
  }
  waitpid(w, nullptr, 0);

  Row row;
  auto eager = restore_once(tools, img, w, false, dir);
  row.eager_running = eager["seconds"].get<double>();
  row.eager_fill_gbps = eager["gb_per_s"].get<double>();
  waitpid(w, nullptr, WNOHANG);
  auto lazy_once = [&](const std::vector<std::string>& extra, const fs::path& image) {
    const size_t before = slurp(out).size();
    auto doc = restore_once(tools, image, w, true, dir, extra);
    const auto& l = doc["lazy"];
    Lazy z;
    z.running = l["seconds_to_running"].get<double>();
    z.complete = l["seconds_to_complete"].is_number() ? l["seconds_to_complete"].get<double>() : 0;
    z.gbps = static_cast<double>(l["pages_lazy"].get<uint64_t>() * 4096) / std::max(1e-9, z.complete - z.running) / 1e9;
    z.pager_p50 = l["fault_latency_us"]["p50"].get<double>();
    z.pager_p99 = l["fault_latency_us"]["p99"].get<double>();
    z.faults = l["faults_served"].get<uint64_t>();
    z.prefetched = l["pages_prefetched"].get<uint64_t>();
    Tick t = last_tick(slurp(out), before);
    z.proc_p50 = t.p50;
    z.proc_p99 = t.p99;
    z.missing = t.missing;
    waitpid(w, nullptr, WNOHANG);
    return z;
  };
  row.local = lazy_once({}, img);
  // The same chain served by `page-server --lazy` on loopback.
  const fs::path secret = dir / "secret", events = dir / "server.json";
  if (run({tools.wpckpt, "page-server", "--new-secret", "--secret-file", secret.string()}, dir / "s.out", dir / "s.err"))
    die("page-server --new-secret: " + slurp(dir / "s.err"));
  pid_t server = spawn({tools.wpckpt, "page-server", "-D", dir.string(), "--lazy", "--address", "127.0.0.1", "--port",
                        "0", "--secret-file", secret.string(), "--json"},
                       events, dir / "server.err");
  if (!wait_for([&] { return slurp(events).find('\n') != std::string::npos; }, 30)) die("page server: " + slurp(dir / "server.err"));
  auto listening = nlohmann::json::parse(slurp(events).substr(0, slurp(events).find('\n')), nullptr, false);
  const std::string port = std::to_string(listening.value("port", 0));
  row.remote = lazy_once({"--page-server", "--address", "127.0.0.1", "--port", port, "--secret-file", secret.string()},
                         "dump");
  kill(server, SIGKILL);
  waitpid(server, nullptr, 0);
  fs::remove_all(dir);
  return row;
}

fs::path build_dir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return exe.parent_path().parent_path();  // build/bench/lazy_restore_bench -> build
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<uint64_t> sizes;
  fs::path dir = "/var/tmp";
  Tools tools;
  tools.wpckpt = std::getenv("WPCKPT") ? std::getenv("WPCKPT") : (build_dir() / "wpckpt").string();
  tools.workload =
      std::getenv("LAZY_PAGES") ? std::getenv("LAZY_PAGES") : (build_dir() / "tests/workloads/lazy_pages").string();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--gib" && i + 1 < argc) {
      std::stringstream s(argv[++i]);
      for (std::string x; std::getline(s, x, ',');) sizes.push_back(std::stoull(x));
    } else if (a == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else if (a == "--pause-us" && i + 1 < argc) {
      tools.pause_us = static_cast<unsigned>(std::stoul(argv[++i]));
    }
  }
  if (sizes.empty()) sizes = {1, 8};
  std::printf("first touch of fresh memory here: %.1f us/page; workload: 1 writer, random pages, %u us apart\n",
              first_touch_us(), tools.pause_us);
  std::printf("lazy: from the image directory; remote: from `page-server --lazy` over loopback TLS\n");
  std::printf("%-4s %-6s | %9s %9s | %9s %9s %8s %7s | %9s %9s | %9s %9s | %8s %9s\n", "GiB", "", "eager run",
              "fill GB/s", "lazy run", "all in s", "GB/s", "x eager", "pager p50", "p99 us", "proc p50", "p99 us",
              "faults", "prefetch");
  for (uint64_t gib : sizes) {
    Row r = measure(tools, gib, dir);
    for (const auto& [name, z] : {std::pair<const char*, const Lazy&>{"local", r.local}, {"remote", r.remote}}) {
      std::printf("%-4llu %-6s | %8.3fs %9.2f | %8.3fs %9.3f %8.2f %6.1fx | %9.0f %9.0f | %9.0f %9.0f | %8llu %9llu\n",
                  static_cast<unsigned long long>(gib), name, r.eager_running, r.eager_fill_gbps, z.running,
                  z.complete, z.gbps, r.eager_running / std::max(1e-9, z.running), z.pager_p50, z.pager_p99,
                  z.proc_p50, z.proc_p99, static_cast<unsigned long long>(z.faults),
                  static_cast<unsigned long long>(z.prefetched));
    }
    std::printf("%-4llu remote/local: time to running %.2f, until all in %.2f\n", static_cast<unsigned long long>(gib),
                r.remote.running / std::max(1e-9, r.local.running), r.remote.complete / std::max(1e-9, r.local.complete));
    std::fflush(stdout);
  }
  return 0;
}
