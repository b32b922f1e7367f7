// Exactness of pre-dump chains on processes that keep writing: after N
// pre-dumps the process is stopped, a last pre-dump taken, and the chain
// must equal the process's memory byte for byte. Run several times per
// workload: it is a race detector.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "tests/e2e/predump_helpers.hpp"

namespace wpckpt::test {
namespace {

struct Scenario {
  const char* name;
  std::vector<std::string> args;
  int repeats;
  int iterations;
};

void run_chain(const Scenario& s, int repeat) {
  SCOPED_TRACE(std::string(s.name) + " repeat " + std::to_string(repeat));
  Workload w;
  start_workload(w, s.args);
  std::filesystem::path parent;
  for (int i = 0; i < s.iterations; ++i) {
    std::filesystem::path dir = w.dir / ("it" + std::to_string(i));
    nlohmann::json j = pre_dump(w.pid(), dir, parent);
    ASSERT_FALSE(j.is_null());
    EXPECT_EQ(j["incremental"].get<bool>(), i > 0) << j.dump();
    parent = dir;
    usleep(30'000);
  }
  stop_workload(w);
  std::filesystem::path last = w.dir / "final";
  nlohmann::json j = pre_dump(w.pid(), last, parent);
  ASSERT_FALSE(j.is_null());
  EXPECT_TRUE(j["incremental"].get<bool>());
  Mismatch m = compare_with_process(w.pid(), last);
  EXPECT_GT(m.pages_compared, w.size / image::kPageSize);
  // The same through the command line: `wpckpt cat` of the whole buffer.
  char addr[24];
  std::snprintf(addr, sizeof addr, "0x%llx", static_cast<unsigned long long>(w.buf));
  CommandResult cat = run_wpckpt({"cat", "-D", last.string(), "--addr", addr, "--len", std::to_string(w.size)});
  ASSERT_EQ(cat.exit_code, 0) << cat.err;
  std::string want(w.size, '\0');
  int mem = open(("/proc/" + std::to_string(w.pid()) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_EQ(pread(mem, want.data(), want.size(), static_cast<off_t>(w.buf)), static_cast<ssize_t>(want.size()));
  close(mem);
  EXPECT_TRUE(cat.out == want) << "wpckpt cat differs from /proc/PID/mem";
  // Areas write-protect cannot track are handled another way, and say so.
  auto chain = image::ImageChain::open(image_of(last, w.pid()));
  ASSERT_TRUE(chain.ok());
  for (const image::MemoryArea& a : (*chain)->manifest(0).areas) {
    std::string tracking = a.attributes.value("tracking", "");
    bool special = a.path == "[vdso]" || a.path == "[vvar]";
    bool shared_memory = a.path.rfind("/memfd:", 0) == 0 || a.path.rfind("/dev/zero", 0) == 0;
    bool read_only_shared_file = a.prot == "r--s" && !shared_memory;
    EXPECT_TRUE(!special || !a.contents) << a.path;
    EXPECT_TRUE(!shared_memory || tracking == "copied-whole") << a.path << " " << tracking;
    EXPECT_TRUE(!read_only_shared_file || tracking == "no-contents") << a.path << " " << tracking;
  }
  EXPECT_EQ(m.pages_differing, 0u) << "first differing page " << std::hex << m.first_bad << " in " << m.first_area;
}

class PreDumpExact : public ::testing::TestWithParam<Scenario> {};

TEST_P(PreDumpExact, ChainEqualsProcessMemory) {
  for (int r = 0; r < GetParam().repeats; ++r) run_chain(GetParam(), r);
}

INSTANTIATE_TEST_SUITE_P(
    Workloads, PreDumpExact,
    ::testing::Values(
        Scenario{"random_writers_and_kernel_writes",
                 {"--mib", "32", "--threads", "3", "--pattern", "random", "--read-into-heap", "--pause-us", "20"}, 4, 6},
        Scenario{"sparse_random_writers", {"--mib", "32", "--threads", "2", "--pattern", "random", "--pause-us", "3000"},
                 2, 6},
        Scenario{"sequential_writers", {"--mib", "32", "--threads", "2", "--pattern", "seq", "--pause-us", "20"}, 2, 6},
        // Areas of several chunks: the first, whole iteration protects each
        // chunk just before its copy while the writers run (FreshAreaChunks).
        Scenario{"writers_during_a_chunked_first_copy",
                 {"--mib", "112", "--threads", "2", "--pattern", "random", "--pause-us", "20"}, 2, 4},
        Scenario{"areas_appear_grow_move_shrink_vanish",
                 {"--mib", "16", "--threads", "2", "--churn", "--discard", "--pause-us", "20"}, 4, 8},
        Scenario{"transparent_huge_pages", {"--mib", "32", "--threads", "2", "--thp", "--pause-us", "20"}, 2, 6},
        Scenario{"fork_in_workload", {"--mib", "16", "--threads", "2", "--fork", "--pause-us", "20"}, 2, 6},
        Scenario{"shared_memory_and_files", {"--mib", "8", "--threads", "2", "--shared", "--fork", "--pause-us", "100"},
                 2, 5},
        Scenario{"everything_at_once",
                 {"--mib", "24", "--threads", "2", "--read-into-heap", "--churn", "--discard", "--thp", "--fork",
                  "--shared", "--pause-us", "20"},
                 3, 8}),
    [](const ::testing::TestParamInfo<Scenario>& info) { return std::string(info.param.name); });

// Pre-dumps killed at random points between good ones: a killed iteration
// may have re-protected pages it never stored; the next good one must notice
// (epoch) and capture whole, and the chain stays exact.
TEST(PreDumpKilled, ChainStaysExactAcrossKilledIterations) {
  std::mt19937 rng(12345);
  int whole_after_kill = 0;
  for (int repeat = 0; repeat < 3; ++repeat) {
    Workload w;
    start_workload(w, {"--mib", "32", "--threads", "2", "--churn", "--read-into-heap", "--pause-us", "20"});
    std::filesystem::path parent = w.dir / "it0";
    ASSERT_FALSE(pre_dump(w.pid(), parent).is_null());
    // Kill anywhere within the run time of a good pre-dump here: on a busy
    // machine a fixed bound ends most runs before their scan starts.
    int kill_window_us = 60'000;
    for (int i = 1; i <= 6; ++i) {
      std::filesystem::path doomed = w.dir / ("killed" + std::to_string(i));
      ChildProcess killed = ChildProcess::start({wpckpt_binary(), "pre-dump", "-t", std::to_string(w.pid()), "-D",
                                                 doomed.string(), "--prev-images-dir", parent.string()},
                                                {}, "/dev/null", "/dev/null");
      usleep(std::uniform_int_distribution<int>(0, kill_window_us)(rng));
      killed.kill_now();
      if (std::filesystem::exists(doomed)) {
        // It finished before the kill: a complete image; continue from it.
        parent = doomed;
        continue;
      }
      std::filesystem::path good = w.dir / ("it" + std::to_string(i));
      auto t0 = std::chrono::steady_clock::now();
      nlohmann::json j = pre_dump(w.pid(), good, parent);
      ASSERT_FALSE(j.is_null());
      auto run_us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
      kill_window_us = std::max(60'000, static_cast<int>(run_us));
      if (!j["incremental"].get<bool>()) ++whole_after_kill;
      parent = good;
    }
    stop_workload(w);
    std::filesystem::path last = w.dir / "final";
    ASSERT_FALSE(pre_dump(w.pid(), last, parent).is_null());
    Mismatch m = compare_with_process(w.pid(), last);
    EXPECT_EQ(m.pages_differing, 0u) << "first differing page " << std::hex << m.first_bad << " in " << m.first_area;
  }
  // Most kills land after the scan started: those must have been noticed.
  EXPECT_GT(whole_after_kill, 0);
}

// A parent that is not the latest iteration: the delta would miss what the
// newer iteration re-protected, so the pre-dump captures whole, and is exact.
TEST(PreDumpParent, StaleParentIsCapturedWhole) {
  Workload w;
  start_workload(w, {"--mib", "16", "--threads", "2", "--pause-us", "50"});
  ASSERT_FALSE(pre_dump(w.pid(), w.dir / "a").is_null());
  ASSERT_FALSE(pre_dump(w.pid(), w.dir / "b", w.dir / "a").is_null());
  nlohmann::json j = pre_dump(w.pid(), w.dir / "c", w.dir / "a");
  ASSERT_FALSE(j.is_null());
  EXPECT_FALSE(j["incremental"].get<bool>());
  EXPECT_NE(j["whole_reason"].get<std::string>().find("not the latest"), std::string::npos);
  stop_workload(w);
  ASSERT_FALSE(pre_dump(w.pid(), w.dir / "d", w.dir / "c").is_null());
  Mismatch m = compare_with_process(w.pid(), w.dir / "d");
  EXPECT_EQ(m.pages_differing, 0u) << std::hex << m.first_bad << " " << m.first_area;
}

}  // namespace
}  // namespace wpckpt::test
