// `wpckpt run` and the agent on real processes: same pid, the agent's
// descriptors, a fork child with a uffd of its own, errors that say what to do.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>

#include "tests/e2e/predump_helpers.hpp"
#include "tracker/agent_link.hpp"

namespace wpckpt::test {
namespace {

std::vector<std::string> fd_links(pid_t pid) {
  std::vector<std::string> out;
  for (auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    std::error_code ec;
    out.push_back(std::filesystem::read_symlink(e.path(), ec).string());
  }
  return out;
}

int count(const std::vector<std::string>& v, const std::string& s) { return static_cast<int>(std::count(v.begin(), v.end(), s)); }

TEST(Run, ExecsInPlaceWithTheAgent) {
  TempDir dir;
  std::string out = (dir / "out").string();
  ChildProcess child = ChildProcess::start({wpckpt_binary(), "run", "--", "/bin/sh", "-c", "echo $$; exec sleep 30"}, {},
                                           out);
  ASSERT_TRUE(wait_until([&] { return read_file(out).size() > 1; }));
  EXPECT_EQ(std::stoi(read_file(out)), child.pid());  // same pid: no wrapper process
  // comm changes at exec, before the loader has run the agent's constructor.
  ASSERT_TRUE(wait_until([&] {
    return read_file("/proc/" + std::to_string(child.pid()) + "/comm") == "sleep\n" &&
           count(fd_links(child.pid()), "/memfd:wpckpt-agent (deleted)") == 1;
  }));
  auto links = fd_links(child.pid());
  EXPECT_EQ(count(links, "anon_inode:[userfaultfd]"), 1);
  EXPECT_EQ(count(links, "/memfd:wpckpt-agent (deleted)"), 1);
  // The agent fills its state right after creating it: wait for that.
  ASSERT_TRUE(wait_until([&] { return tracker::AgentLink::attach(child.pid()).ok(); }));
  auto link = tracker::AgentLink::attach(child.pid());
  ASSERT_TRUE(link.ok()) << link.error().message();
  EXPECT_EQ(link->features(), 1ull << 15);  // WP_ASYNC and nothing else
}

TEST(Run, MissingCommandExits127) {
  CommandResult r = run_wpckpt({"run", "--", "/nonexistent/program"});
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_NE(r.err.find("wpckpt: error:"), std::string::npos);
}

TEST(Run, ForkChildDropsTheParentsUffdAndMakesItsOwn) {
  // python3's os.fork() runs the atfork handlers; the child never execs.
  ChildProcess parent = ChildProcess::start(
      {wpckpt_binary(), "run", "--", "/usr/bin/python3", "-c", "import os,time\nos.fork()\ntime.sleep(30)"});
  pid_t child = 0;
  ASSERT_TRUE(wait_until([&] {
    std::ifstream in("/proc/" + std::to_string(parent.pid()) + "/task/" + std::to_string(parent.pid()) + "/children");
    return static_cast<bool>(in >> child);
  }));
  struct KillOnExit {
    pid_t& pid;
    ~KillOnExit() {
      if (pid > 0) kill(pid, SIGKILL);  // the grandchild we caused to exist
    }
  } guard{child};
  auto parent_link = tracker::AgentLink::attach(parent.pid());
  ASSERT_TRUE(parent_link.ok()) << parent_link.error().message();
  ASSERT_TRUE(wait_until([&] { return tracker::AgentLink::attach(child).ok(); }));
  auto child_link = tracker::AgentLink::attach(child);
  EXPECT_NE(child_link->token(), parent_link->token());
  EXPECT_EQ(count(fd_links(child), "anon_inode:[userfaultfd]"), 1);  // the inherited one is gone
  // The child is a target of its own.
  TempDir dir;
  CommandResult r = run_wpckpt({"pre-dump", "-t", std::to_string(child), "-D", (dir / "c").string(), "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// An unprivileged process gets its uffd through UFFD_USER_MODE_ONLY
// (vm.unprivileged_userfaultfd=0 refuses the plain syscall) and still tracks
// kernel-mode writes such as read(2) into its heap.
TEST(Run, UnprivilegedProcessIsTrackedExactly) {
  Workload w;
  start_workload(w, {"--mib", "8", "--threads", "2", "--read-into-heap", "--pause-us", "200"},
                 {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  auto link = tracker::AgentLink::attach(w.pid());
  ASSERT_TRUE(link.ok()) << link.error().message();
  std::string route = link->route();
  if (read_file("/proc/sys/vm/unprivileged_userfaultfd") == "0\n") {
    EXPECT_EQ(route, "user-mode-only");
  }
  ASSERT_FALSE(pre_dump(w.pid(), w.dir / "a").is_null());
  usleep(50'000);
  ASSERT_FALSE(pre_dump(w.pid(), w.dir / "b", w.dir / "a").is_null());
  stop_workload(w);
  ASSERT_FALSE(pre_dump(w.pid(), w.dir / "c", w.dir / "b").is_null());
  Mismatch m = compare_with_process(w.pid(), w.dir / "c");
  EXPECT_EQ(m.pages_differing, 0u) << std::hex << m.first_bad << " " << m.first_area;
}

// A process without the agent is attached, and says so (tests/e2e/attach_test.cpp has the rest).
TEST(PreDumpErrors, ProcessWithoutAgentIsAttachedAndSaysSo) {
  ChildProcess sleeper = ChildProcess::start({"/bin/sleep", "30"});
  TempDir dir;
  CommandResult r = run_wpckpt({"pre-dump", "-t", std::to_string(sleeper.pid()), "-D", (dir / "x").string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("attached to process " + std::to_string(sleeper.pid())), std::string::npos) << r.out;
  EXPECT_TRUE(std::filesystem::exists(dir / "x"));
}

TEST(PreDumpStopped, StoppedProcessFromTheFirstIteration) {
  Workload w;
  start_workload(w, {"--mib", "8", "--threads", "2", "--read-into-heap"});
  stop_workload(w);
  nlohmann::json first = pre_dump(w.pid(), w.dir / "a");
  ASSERT_FALSE(first.is_null());
  EXPECT_GE(first["pages_written"].get<uint64_t>(), w.size / 4096);
  nlohmann::json second = pre_dump(w.pid(), w.dir / "b", w.dir / "a");
  ASSERT_FALSE(second.is_null());
  EXPECT_TRUE(second["incremental"].get<bool>());
  EXPECT_EQ(second["pages_written"].get<uint64_t>(), 0u);  // nothing ran in between
  Mismatch m = compare_with_process(w.pid(), w.dir / "b");
  EXPECT_EQ(m.pages_differing, 0u) << std::hex << m.first_bad << " " << m.first_area;
}

}  // namespace
}  // namespace wpckpt::test
