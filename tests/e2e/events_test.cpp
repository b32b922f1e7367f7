// The event queue end to end: `watch` against a process writing a known
// number of pages per second, `iterate` on a dirty rate that falls and on
// one that never does, and the exactness suite's workloads pre-dumped in
// events mode (with the cross-check on) by an in-process iterate loop.
#include <signal.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <random>

#include "lib/iterate/iterate.hpp"
#include "tests/e2e/predump_helpers.hpp"

namespace wpckpt::test {
namespace {

bool event_queue_here(std::string& why) {
  CommandResult r = run_wpckpt({"check", "--feature", "bpf_fault_events"});
  why = r.out + r.err;
  return r.exit_code == 0;
}

// rate_writer under `wpckpt run`: writes `rate` distinct pages per second.
struct RateWriter {
  TempDir dir;
  ChildProcess child;
  pid_t pid() const { return child.pid(); }
};

// `under_run` false: started on its own, to be attached by wpckpt.
void start_rate_writer(RateWriter& w, const std::vector<std::string>& args, bool under_run = true) {
  std::string ready = (w.dir / "ready").string();
  std::vector<std::string> argv = {workload("rate_writer"), "--ready", ready};
  if (under_run) argv.insert(argv.begin(), {wpckpt_binary(), "run", "--"});
  argv.insert(argv.end(), args.begin(), args.end());
  w.child = ChildProcess::start(argv);
  ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(ready); })) << "rate_writer did not start";
}

std::vector<nlohmann::json> json_lines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

TEST(Watch, MeasuresAKnownWriteRateWithinTenPercent) {
  std::string why;
  if (!event_queue_here(why)) GTEST_SKIP() << "no event queue here: " << why;
  constexpr double kRate = 2000;  // pages per second; 128 MiB lasts 16 s before the writer wraps around
  RateWriter w;
  start_rate_writer(w, {"--mib", "128", "--rate", "2000"});
  ASSERT_FALSE(pre_dump(w.pid(), w.dir / "1").is_null());  // arms write-protect: one fault per page written
  CommandResult r = run_wpckpt({"watch", "-t", std::to_string(w.pid()), "--interval", "1", "--count", "4", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  std::vector<nlohmann::json> samples = json_lines(r.out);
  ASSERT_EQ(samples.size(), 4u) << r.out;
  uint64_t last_since_parent = 0;
  std::vector<double> rates;
  for (size_t i = 0; i < samples.size(); ++i) {
    const nlohmann::json& s = samples[i];
    for (const char* key : {"dirty_pages_per_s", "pages_dirty_since_parent", "events_lost"})
      ASSERT_TRUE(s.contains(key)) << key << " missing: " << s.dump();
    EXPECT_EQ(s["events_lost"].get<uint64_t>(), 0u);
    EXPECT_TRUE(s.value("armed", false)) << s.dump();
    uint64_t since = s["pages_dirty_since_parent"].get<uint64_t>();
    EXPECT_GT(since, last_since_parent) << "the count since the parent must grow: " << s.dump();
    last_since_parent = since;
    rates.push_back(s["dirty_pages_per_s"].get<double>());
  }
  std::sort(rates.begin(), rates.end());
  double median = (rates[1] + rates[2]) / 2;
  EXPECT_NEAR(median, kRate, kRate * 0.10) << r.out;
  // The busiest area is the writer's buffer.
  EXPECT_FALSE(samples.back()["busiest_areas"].empty());
}

// Before any pre-dump nothing is write-protected: watch says so (and how to
// arm it) instead of showing a process that seems to write nothing.
TEST(Watch, SaysWhenNoPreDumpHasArmedTheProcess) {
  std::string why;
  if (!event_queue_here(why)) GTEST_SKIP() << "no event queue here: " << why;
  RateWriter w;
  start_rate_writer(w, {"--mib", "8", "--rate", "500"});
  CommandResult r = run_wpckpt({"watch", "-t", std::to_string(w.pid()), "--interval", "0.2", "--count", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  std::vector<nlohmann::json> samples = json_lines(r.out);
  ASSERT_EQ(samples.size(), 1u) << r.out;
  EXPECT_FALSE(samples[0].value("armed", true)) << samples[0].dump();
  EXPECT_NE(r.err.find("wpckpt pre-dump"), std::string::npos) << r.err;
}

TEST(Watch, RefusesWithAHintWithoutTheEventQueue) {
  RateWriter w;
  start_rate_writer(w, {"--mib", "8", "--rate", "100"});
  CommandResult r = run_wpckpt({"--disable-feature", "bpf_fault_events", "watch", "-t", std::to_string(w.pid()),
                                "--count", "1"});
  // Switched off or not: never a crash; without the queue a clear error.
  std::string why;
  if (event_queue_here(why)) {
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_NE(r.err.find("hint"), std::string::npos) << r.err;
  }
}

TEST(Iterate, ConvergesWhenTheDirtyRateFallsAndEndsInADump) {
  RateWriter w;
  // 8000 pages/s at first, halved every half second.
  start_rate_writer(w, {"--mib", "256", "--rate", "8000", "--halve-every", "0.5"});
  std::filesystem::path dir = w.dir / "ck";
  CommandResult r = run_wpckpt({"iterate", "-t", std::to_string(w.pid()), "-D", dir.string(), "--interval", "0.5",
                                "--target-downtime-ms", "35", "--max-iterations", "20", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  std::vector<nlohmann::json> lines = json_lines(r.out);
  ASSERT_GE(lines.size(), 3u) << r.out;
  const nlohmann::json& result = lines.back();
  ASSERT_EQ(result["type"], "result") << r.out;
  EXPECT_EQ(result["stopped"], "converged") << result.dump();
  ASSERT_FALSE(result["final_dump"].is_null());
  size_t n = result["iterations"].get<size_t>();
  EXPECT_TRUE(std::filesystem::exists(dir / std::to_string(n + 1) / "manifest.json"));
  EXPECT_EQ(lines.size(), n + 1);
  for (size_t i = 1; i < n; ++i) EXPECT_TRUE(lines[i]["incremental"].get<bool>()) << lines[i].dump();
  std::string why;
  if (event_queue_here(why) && n >= 3) {
    EXPECT_EQ(lines[n - 1]["scan_mode"], "events") << lines[n - 1].dump();
  }
  EXPECT_EQ(w.child.wait(std::chrono::seconds(30)) != -1, true) << "the final dump ends the process";
}

// A process started without wpckpt is attached before the event reader
// starts: the attach's injected userfaultfd calls are not taken for the
// process's own, so the deltas after the first are taken in events mode.
TEST(Iterate, AnAttachedProcessGetsEventsModeDeltas) {
  std::string why;
  if (!event_queue_here(why)) GTEST_SKIP() << "no event queue here: " << why;
  RateWriter w;
  start_rate_writer(w, {"--mib", "64", "--rate", "1000"}, false);
  std::filesystem::path dir = w.dir / "ck";
  CommandResult r = run_wpckpt({"iterate", "-t", std::to_string(w.pid()), "-D", dir.string(), "--interval", "0.3",
                                "--target-downtime-ms", "1", "--max-iterations", "3", "--final", "none", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  std::vector<nlohmann::json> lines = json_lines(r.out);
  ASSERT_GE(lines.size(), 3u) << r.out;
  for (size_t i = 1; i + 1 < lines.size(); ++i)
    EXPECT_EQ(lines[i]["scan_mode"], "events") << lines[i].dump();
  EXPECT_EQ(kill(w.pid(), 0), 0) << "--final none leaves the process running";
}

TEST(Iterate, StopsAndSaysSoWhenItNeverConverges) {
  RateWriter w;
  start_rate_writer(w, {"--mib", "512", "--rate", "4000"});
  std::filesystem::path dir = w.dir / "ck";
  CommandResult r = run_wpckpt({"iterate", "-t", std::to_string(w.pid()), "-D", dir.string(), "--interval", "0.5",
                                "--target-downtime-ms", "1", "--max-iterations", "8", "--final", "none", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  std::vector<nlohmann::json> lines = json_lines(r.out);
  ASSERT_FALSE(lines.empty());
  const nlohmann::json& result = lines.back();
  std::string stopped = result.value("stopped", "");
  EXPECT_TRUE(stopped == "not_converging" || stopped == "max_iterations") << result.dump();
  EXPECT_NE(result["stop_reason"].get<std::string>().find(stopped == "not_converging" ? "not converging" : "maximum"),
            std::string::npos);
  EXPECT_TRUE(result["final_dump"].is_null());
  EXPECT_EQ(kill(w.pid(), 0), 0) << "--final none leaves the process running";
}

// ------------------------------------------------------- exactness, events mode

// A process of our own that writes into the workload's buffer with
// process_vm_writev (no fault in the workload) until stopped.
class OutsideWriter {
 public:
  OutsideWriter(pid_t target, uint64_t buf, uint64_t size) {
    pid_ = fork();
    if (pid_ == 0) {
      std::mt19937_64 rng(7);
      for (;;) {
        uint64_t data = rng();
        uint64_t addr = buf + (rng() % (size / 4096)) * 4096 + (rng() % 500) * 8;
        iovec local{&data, sizeof data}, remote{reinterpret_cast<void*>(addr), sizeof data};
        if (process_vm_writev(target, &local, 1, &remote, 1, 0) < 0) _exit(0);
        usleep(2000);
      }
    }
  }
  ~OutsideWriter() { stop(); }
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

struct EventScenario {
  const char* name;
  std::vector<std::string> args;
  bool outside_writer = false;
};

class PreDumpExactEvents : public ::testing::TestWithParam<EventScenario> {};

TEST_P(PreDumpExactEvents, ChainEqualsProcessMemory) {
  const EventScenario& s = GetParam();
  std::string why;
  bool events = event_queue_here(why);
  if (!events) std::printf("no event queue here (%s): full scans only\n", why.c_str());
  Workload w;
  start_workload(w, s.args);
  std::unique_ptr<OutsideWriter> outside;
  if (s.outside_writer) outside = std::make_unique<OutsideWriter>(w.pid(), w.buf, w.size);
  constexpr int kStopAt = 6;
  std::atomic<bool> cancel{false};
  std::vector<iterate::IterationFigures> seen;
  iterate::IterateRequest req;
  req.pid = w.pid();
  req.images_dir = w.dir / "ck";
  req.max_iterations = kStopAt + 3;
  req.final_step = iterate::FinalStep::None;
  req.stop_when_converged = false;
  req.interval_s = 0.15;
  req.cross_check = true;
  req.cancel = &cancel;
  auto report = iterate::iterate(req, [&](const iterate::IterationFigures& f) {
    seen.push_back(f);
    if (f.iteration == kStopAt) {
      if (outside) outside->stop();
      stop_workload(w);  // the next iteration runs on a stopped process
    }
    if (f.iteration == kStopAt + 1) cancel = true;
  });
  ASSERT_TRUE(report.ok()) << report.error().message() << " (a cross-check failure means the events missed a write)";
  ASSERT_EQ(seen.size(), static_cast<size_t>(kStopAt + 1));
  int events_mode = 0;
  std::string full_scans;  // why each iteration that was not events-only scanned everything
  for (const iterate::IterationFigures& f : seen) {
    if (f.scan_mode == "events") {
      ++events_mode;
      EXPECT_TRUE(f.cross_checked);
    } else {
      full_scans += " #" + std::to_string(f.iteration) + ": " + f.scan_mode + " (" + f.scan_mode_reason + ")";
    }
    if (f.iteration > 1) {
      EXPECT_TRUE(f.incremental) << f.iteration << ": " << f.scan_mode_reason;
    }
  }
  if (events && !s.outside_writer) {
    EXPECT_GE(events_mode, kStopAt - 2) << "most iterations should scan only what the events named;" << full_scans;
    EXPECT_EQ(seen.back().scan_mode, "events") << seen.back().scan_mode_reason;
  }
  if (events && s.outside_writer) {
    bool saw_outside = std::any_of(seen.begin(), seen.end(), [](const iterate::IterationFigures& f) {
      return f.scan_mode == "full" && f.scan_mode_reason.find("from outside") != std::string::npos;
    });
    EXPECT_TRUE(saw_outside) << "process_vm_writev must force a full scan";
  }
  Mismatch m = compare_with_process(w.pid(), seen.back().dir);
  EXPECT_GT(m.pages_compared, w.size / image::kPageSize);
  EXPECT_EQ(m.pages_differing, 0u) << "first differing page " << std::hex << m.first_bad << " in " << m.first_area;
}

INSTANTIATE_TEST_SUITE_P(
    Workloads, PreDumpExactEvents,
    ::testing::Values(
        EventScenario{"random_writers_and_kernel_writes",
                      {"--mib", "32", "--threads", "3", "--pattern", "random", "--read-into-heap", "--pause-us", "20"}},
        EventScenario{"sequential_writers", {"--mib", "32", "--threads", "2", "--pattern", "seq", "--pause-us", "20"}},
        EventScenario{"areas_appear_grow_move_shrink_vanish",
                      {"--mib", "16", "--threads", "2", "--churn", "--discard", "--pause-us", "20"}},
        EventScenario{"transparent_huge_pages", {"--mib", "32", "--threads", "2", "--thp", "--pause-us", "20"}},
        EventScenario{"fork_in_workload", {"--mib", "16", "--threads", "2", "--fork", "--pause-us", "20"}},
        EventScenario{"shared_memory_and_files",
                      {"--mib", "8", "--threads", "2", "--shared", "--fork", "--pause-us", "100"}},
        EventScenario{"everything_at_once",
                      {"--mib", "24", "--threads", "2", "--read-into-heap", "--churn", "--discard", "--thp", "--fork",
                       "--shared", "--pause-us", "20"}},
        EventScenario{"writer_from_outside_process_vm_writev",
                      {"--mib", "16", "--threads", "1", "--pause-us", "200"},
                      true}),
    [](const ::testing::TestParamInfo<EventScenario>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace wpckpt::test
