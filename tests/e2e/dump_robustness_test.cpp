// `wpckpt dump` when things go wrong: wpckpt SIGKILLed while the target is
// frozen, while a syscall is injected, before the commit; SIGTERM; the target
// killed, forking or starting threads meanwhile; an unsupported fd. The
// target must survive (unless it was killed) and keep computing correctly,
// untraced, and the parent chain must stay usable.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/e2e/dump_helpers.hpp"
#include "tests/e2e/predump_helpers.hpp"

namespace wpckpt::test {
namespace {

// Fault points exist unless the build turned test hooks off.
#define REQUIRE_FAULT_POINTS() \
  if (!WPCKPT_TEST_HOOKS_ON) GTEST_SKIP() << "built with -DWPCKPT_TEST_HOOKS=OFF: no fault points"

// wpckpt dump started in the background, stopping at a fault point.
struct BackgroundDump {
  TempDir logs;
  ChildProcess proc;
  std::string err_path;
  BackgroundDump(pid_t target, const std::filesystem::path& images, const std::filesystem::path& parent,
                 const std::string& fault) {
    err_path = (logs / "err.txt").string();
    proc = ChildProcess::start({wpckpt_binary(), "dump", "-t", std::to_string(target), "-D", images.string(),
                                "--prev-images-dir", parent.string()},
                               {"WPCKPT_FAULT_POINT=" + fault}, (logs / "out.txt").string(), err_path);
  }
  std::string err() const { return read_file(err_path); }
  bool reached(const std::string& point) {
    return wait_until([&] { return err().find("fault point " + point) != std::string::npos || !proc.running(); }) &&
           err().find("fault point " + point) != std::string::npos;
  }
};

class DumpKilled : public ::testing::TestWithParam<const char*> {};

TEST_P(DumpKilled, TargetSurvivesAndTheChainStaysUsable) {
  REQUIRE_FAULT_POINTS();
  SelfcheckWorkload w({"-t", "3"}, true);
  TempDir dir;
  ASSERT_EQ(run_wpckpt({"pre-dump", "-t", std::to_string(w.pid()), "-D", (dir / "pre1").string()}).exit_code, 0);
  for (int round = 0; round < 3; ++round) {
    std::string images = (dir / ("d" + std::to_string(round))).string();
    {
      BackgroundDump dump(w.pid(), images, dir / "pre1", GetParam());
      ASSERT_TRUE(dump.reached(GetParam())) << dump.err();
      dump.proc.kill_now();  // SIGKILL
    }
    EXPECT_FALSE(std::filesystem::exists(images));
    EXPECT_TRUE(wait_until([&] { return untraced_and_running(w); }));
    ASSERT_TRUE(w.keeps_computing()) << "round " << round << ": " << w.output();
  }
  EXPECT_EQ(run_wpckpt({"verify", "-D", (dir / "pre1").string()}).exit_code, 0);
  auto r = run_wpckpt({"dump", "-t", std::to_string(w.pid()), "-D", (dir / "final").string(), "--prev-images-dir",
                       (dir / "pre1").string(), "--leave-running"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(run_wpckpt({"verify", "-D", (dir / "final").string()}).exit_code, 0);
  EXPECT_TRUE(w.keeps_computing()) << w.output();
}

INSTANTIATE_TEST_SUITE_P(Points, DumpKilled, ::testing::Values("frozen", "injecting", "captured"));

// A killing dump re-protects nothing (CaptureOptions::rearm): one that dies
// after its scan leaves the process at its parent's epoch with the marks as
// they were, so the next pre-dump is still a delta, and exact. (A dump that
// re-armed would have made it capture whole, or lost the pages it scanned.)
TEST(DumpRobustness, AKillingDumpThatDiesAfterItsScanLeavesTheNextDeltaExact) {
  REQUIRE_FAULT_POINTS();
  Workload w;
  start_workload(w, {"--mib", "16", "--threads", "2", "--pause-us", "50"});
  ASSERT_FALSE(pre_dump(w.pid(), w.dir / "a").is_null());
  usleep(100'000);  // pages written since "a": the dump's scan finds them
  {
    BackgroundDump dump(w.pid(), w.dir / "d", w.dir / "a", "captured");
    ASSERT_TRUE(dump.reached("captured")) << dump.err();
    dump.proc.kill_now();
  }
  EXPECT_FALSE(std::filesystem::exists(w.dir / "d"));
  nlohmann::json b = pre_dump(w.pid(), w.dir / "b", w.dir / "a");
  ASSERT_FALSE(b.is_null());
  EXPECT_TRUE(b["incremental"].get<bool>()) << b["whole_reason"];
  EXPECT_GT(b["pages_written"].get<uint64_t>(), 0u);
  stop_workload(w);
  ASSERT_FALSE(pre_dump(w.pid(), w.dir / "c", w.dir / "b").is_null());
  Mismatch m = compare_with_process(w.pid(), w.dir / "c");
  EXPECT_GT(m.pages_compared, 0u);
  EXPECT_EQ(m.pages_differing, 0u) << "first differing page " << std::hex << m.first_bad << " in " << m.first_area;
}

TEST(DumpRobustness, SigtermDetachesAndWritesNothing) {
  REQUIRE_FAULT_POINTS();
  SelfcheckWorkload w({"-t", "2"}, true);
  TempDir dir;
  ASSERT_EQ(run_wpckpt({"pre-dump", "-t", std::to_string(w.pid()), "-D", (dir / "pre1").string()}).exit_code, 0);
  for (const char* point : {"frozen", "injecting"}) {
    BackgroundDump dump(w.pid(), dir / "d", dir / "pre1", point);
    ASSERT_TRUE(dump.reached(point)) << dump.err();
    ASSERT_EQ(kill(dump.proc.pid(), SIGTERM), 0);
    int status = dump.proc.wait(std::chrono::seconds(20));
    ASSERT_TRUE(WIFEXITED(status)) << dump.err();
    EXPECT_NE(WEXITSTATUS(status), 0);
    EXPECT_NE(dump.err().find("interrupted"), std::string::npos) << dump.err();
    EXPECT_FALSE(std::filesystem::exists(dir / "d"));
    EXPECT_TRUE(untraced_and_running(w));
    EXPECT_TRUE(w.keeps_computing()) << point << ": " << w.output();
  }
}

TEST(DumpRobustness, TargetKilledWhileFrozen) {
  REQUIRE_FAULT_POINTS();
  SelfcheckWorkload w({"-t", "2"}, true);
  TempDir dir;
  ASSERT_EQ(run_wpckpt({"pre-dump", "-t", std::to_string(w.pid()), "-D", (dir / "pre1").string()}).exit_code, 0);
  BackgroundDump dump(w.pid(), dir / "d", dir / "pre1", "frozen:1000");
  ASSERT_TRUE(dump.reached("frozen")) << dump.err();
  ASSERT_EQ(kill(w.pid(), SIGKILL), 0);
  int status = dump.proc.wait(std::chrono::seconds(30));
  ASSERT_TRUE(WIFEXITED(status)) << dump.err();
  EXPECT_NE(WEXITSTATUS(status), 0) << dump.err();
  EXPECT_NE(dump.err().find("wpckpt: error:"), std::string::npos) << dump.err();
  EXPECT_FALSE(std::filesystem::exists(dir / "d"));
  int ws = w.process().wait(std::chrono::seconds(10));
  EXPECT_TRUE(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
}

TEST(DumpRobustness, ProcessThatStartsThreads) {
  SelfcheckWorkload w({"-t", "2", "-c"}, true);
  TempDir dir;
  for (int round = 0; round < 3; ++round) {
    std::string images = (dir / ("d" + std::to_string(round))).string();
    auto r = run_wpckpt({"dump", "-t", std::to_string(w.pid()), "-D", images, "--leave-running"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto st = load_state(images);
    EXPECT_GE(st.threads.size(), 4u);  // main, 2 computing, feeder, reader, churners...
    EXPECT_TRUE(st.threads[0].is_main);
    EXPECT_TRUE(wait_until([&] { return untraced_and_running(w); }));
    ASSERT_TRUE(w.keeps_computing()) << w.output();
  }
}

// Credentials are saved per process: a thread with its own uid is refused,
// naming the thread, and the process runs on untouched.
TEST(DumpRobustness, AThreadWithItsOwnCredentialsIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (a thread switches to another uid)";
  SelfcheckWorkload w({"-t", "1", "-u", "65534"}, true);
  pid_t odd = -1;
  ASSERT_TRUE(wait_until([&] {
    for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(w.pid()) + "/task")) {
      if (read_file(e.path() / "status").find("Uid:\t65534") != std::string::npos) {
        odd = std::stoi(e.path().filename().string());
        return true;
      }
    }
    return false;
  }));
  TempDir dir;
  auto r = run_wpckpt({"dump", "-t", std::to_string(w.pid()), "-D", (dir / "d").string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("thread " + std::to_string(odd) + " of process " + std::to_string(w.pid()) +
                       " has other credentials than its main thread"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "d"));
  EXPECT_TRUE(untraced_and_running(w));
  EXPECT_TRUE(w.keeps_computing()) << w.output();
}

// A process that keeps forking short-lived children: a dump takes it with
// the children it has when frozen (a tree's image, or one process's when it
// has none), or, when children came and went through every attempt, fails
// saying so. Either way the process runs on intact.
TEST(DumpRobustness, ProcessThatForksIsDumpedWithItsChildrenOrToldItKeptChanging) {
  SelfcheckWorkload w({"-t", "2", "-c", "-f"}, true);
  TempDir dir;
  for (int round = 0; round < 3; ++round) {
    std::filesystem::path images = dir / ("d" + std::to_string(round));
    auto r = run_wpckpt({"dump", "-t", std::to_string(w.pid()), "-D", images.string(), "--leave-running"});
    if (r.exit_code == 0) {
      bool tree = std::filesystem::exists(images / "tree.json");
      EXPECT_TRUE(load_state(tree ? images / std::to_string(w.pid()) : images).threads.at(0).is_main);
    } else {
      EXPECT_NE(r.err.find("kept changing"), std::string::npos) << r.err;
      EXPECT_FALSE(std::filesystem::exists(images));
    }
    EXPECT_TRUE(wait_until([&] { return untraced_and_running(w); }));
    ASSERT_TRUE(w.keeps_computing()) << w.output();
  }
}

TEST(DumpRobustness, UnsupportedFdIsRefusedWithItsNumberAndKind) {
  SelfcheckWorkload w({"-t", "1", "-s"}, true);
  TempDir dir;
  auto r = run_wpckpt({"dump", "-t", std::to_string(w.pid()), "-D", (dir / "d").string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("wpckpt: error:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("socket"), std::string::npos) << r.err;
  // The socket is the first fd after the agent's: name it as /proc does.
  bool named = false;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(w.pid()) + "/fd")) {
    std::string link = std::filesystem::read_symlink(e.path()).string();
    if (link.rfind("socket:", 0) == 0)
      named |= r.err.find("fd " + e.path().filename().string() + " ") != std::string::npos;
  }
  EXPECT_TRUE(named) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "d"));
  EXPECT_TRUE(untraced_and_running(w));
  EXPECT_TRUE(w.keeps_computing()) << w.output();
  auto js = run_wpckpt({"dump", "-t", std::to_string(w.pid()), "-D", (dir / "d").string(), "--json"});
  EXPECT_NE(js.exit_code, 0);
  EXPECT_NE(js.out.find("socket"), std::string::npos) << js.out;
}

}  // namespace
}  // namespace wpckpt::test
