// `wpckpt dump` on a cooperating process: the captured state compared with
// /proc and with what the workload says about itself; kill after commit;
// --leave-running leaves tracking armed.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <set>

#include "lib/ptrace/regs.hpp"
#include "tests/e2e/dump_helpers.hpp"

namespace wpckpt::test {
namespace {

std::set<std::pair<uint64_t, uint64_t>> proc_maps_ranges(pid_t pid) {
  std::set<std::pair<uint64_t, uint64_t>> out;
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/maps"));
  std::string line;
  while (std::getline(in, line)) {
    unsigned long long a = 0, b = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx", &a, &b) == 2) out.emplace(a, b);
  }
  return out;
}

uint64_t proc_limit(pid_t pid, const std::string& name) {
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/limits"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name, 0) != 0) continue;
    std::istringstream v(line.substr(26));
    std::string soft;
    v >> soft;
    return soft == "unlimited" ? ~0ull : std::stoull(soft);
  }
  return 0;
}

TEST(DumpState, MatchesProcAndTheWorkload) {
  SelfcheckWorkload w({"-t", "3"}, true);
  TempDir dir;
  auto pre = run_wpckpt({"pre-dump", "-t", std::to_string(w.pid()), "-D", (dir / "pre1").string(), "--json"});
  ASSERT_EQ(pre.exit_code, 0) << pre.err;
  auto r = run_wpckpt({"dump", "-t", std::to_string(w.pid()), "-D", (dir / "d1").string(), "--prev-images-dir",
                       (dir / "pre1").string(), "--leave-running", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = json_of(r);
  for (const char* key : {"freezing_time", "frozen_time", "memdump_time", "memwrite_time", "stopped_time",
                          "pages_scanned", "pages_skipped_parent", "pages_written"})
    EXPECT_TRUE(doc.contains(key)) << key << " missing in " << r.out;
  EXPECT_EQ(doc.value("stopped_time", -1), doc.value("frozen_time", 0)) << "-R: it ran on right after the capture";
  EXPECT_GT(doc.value("pages_skipped_parent", 0), 0) << "a delta against the pre-dump";
  // The workload computes on: what it wrote since the pre-dump was read once before the freeze.
  EXPECT_GT(doc.value("pages_prefetched", 0), 0) << r.out;
  EXPECT_GT(doc.value("prefetch_time", 0), 0) << r.out;
  EXPECT_TRUE(doc.value("incremental", false)) << r.out;

  state::ProcessState st = load_state(dir / "d1");
  // Threads: exactly the process's, main first, each as /proc shows it.
  auto tids = w.threads();
  std::set<int> captured;
  for (const auto& t : st.threads) captured.insert(t.tid);
  EXPECT_EQ(captured, std::set<int>(tids.begin(), tids.end()));
  ASSERT_FALSE(st.threads.empty());
  EXPECT_TRUE(st.threads[0].is_main);
  EXPECT_EQ(st.threads[0].tid, w.pid());
  for (const auto& t : st.threads) {
    EXPECT_EQ(t.sigmask, 1ull << (SIGUSR2 - 1)) << "thread " << t.tid;
    EXPECT_NE(task_status(w.pid(), t.tid).find("SigBlk:\t0000000000000800"), std::string::npos);
    EXPECT_NE(t.regs.fs_base, 0u);
    EXPECT_EQ(t.xsave.size(), ptrace::xsave_size());
    EXPECT_NE(t.rseq.abi_pointer, 0u);
    EXPECT_NE(t.clear_child_tid, 0u) << "glibc sets it for every thread";
    EXPECT_EQ(t.altstack.flags, 2) << "SS_DISABLE";
  }
  EXPECT_EQ(st.xsave_size, ptrace::xsave_size());
  EXPECT_EQ(st.xcr0, ptrace::xcr0());
  // Signal handlers as the workload installed them.
  std::map<int, state::SignalAction> acts;
  for (const auto& a : st.sigactions) acts[a.signo] = a;
  EXPECT_EQ(acts[SIGUSR1].handler, w.ready_value("usr1"));
  EXPECT_TRUE(acts[SIGUSR1].flags & SA_RESTART);
  EXPECT_EQ(acts[SIGUSR2].handler, 0u);
  EXPECT_EQ(acts.count(SIGKILL), 0u);
  // Process fields.
  EXPECT_EQ(st.pid, w.pid());
  EXPECT_EQ(st.ppid, getpid());
  EXPECT_EQ(st.comm, "dump_selfcheck");
  EXPECT_EQ(st.mm.exe_path, std::filesystem::canonical(workload("dump_selfcheck")).string());
  EXPECT_GE(st.mm.brk, w.ready_value("brk"));
  EXPECT_GE(st.mm.brk, st.mm.start_brk);
  EXPECT_EQ(st.cwd, std::filesystem::read_symlink("/proc/" + std::to_string(w.pid()) + "/cwd").string());
  EXPECT_EQ(st.creds.uid, getuid());
  ASSERT_GT(st.rlimits.size(), static_cast<size_t>(RLIMIT_NOFILE));
  EXPECT_EQ(st.rlimits[RLIMIT_NOFILE].cur, proc_limit(w.pid(), "Max open files"));
  EXPECT_EQ(st.rlimits[RLIMIT_STACK].cur, proc_limit(w.pid(), "Max stack size"));
  EXPECT_FALSE(st.vdso_image.empty());
  // Mappings: exactly /proc/PID/maps (no scratch area left behind).
  std::set<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& m : st.mappings) ranges.emplace(m.start, m.end);
  EXPECT_EQ(ranges, proc_maps_ranges(w.pid()));
  EXPECT_EQ(read_file("/proc/" + std::to_string(w.pid()) + "/maps").find("rwxp"), std::string::npos);
  bool has_vdso = false, has_stack = false;
  for (const auto& m : st.mappings) {
    has_vdso |= m.kind == tracker::MemoryKind::Vdso;
    has_stack |= m.kind == tracker::MemoryKind::Stack;
    if (m.kind == tracker::MemoryKind::File) {
      EXPECT_TRUE(m.file.has_value() && m.file->inode != 0) << m.name;
    }
  }
  EXPECT_TRUE(has_vdso && has_stack);
  // File descriptors: /proc/PID/fd minus the agent's two.
  std::set<int> fds;
  for (const auto& f : st.fds) fds.insert(f.fd);
  std::set<int> proc_fds;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(w.pid()) + "/fd"))
    proc_fds.insert(std::stoi(e.path().filename().string()));
  ASSERT_TRUE(st.tracking.contains("uffd_fd"));
  proc_fds.erase(st.tracking["uffd_fd"].get<int>());
  proc_fds.erase(st.tracking["agent_state_fd"].get<int>());
  EXPECT_EQ(fds, proc_fds);

  // It runs on, and tracking is still armed: the next pre-dump is a delta.
  EXPECT_TRUE(untraced_and_running(w));
  EXPECT_TRUE(w.keeps_computing()) << w.output();
  auto next = run_wpckpt({"pre-dump", "-t", std::to_string(w.pid()), "-D", (dir / "pre2").string(),
                          "--prev-images-dir", (dir / "d1").string(), "--json"});
  ASSERT_EQ(next.exit_code, 0) << next.err;
  EXPECT_TRUE(json_of(next).value("incremental", false)) << next.out;
  // show reports the CRIU-named timings.
  auto show = run_wpckpt({"show", "-D", (dir / "d1").string(), "--json"});
  ASSERT_EQ(show.exit_code, 0);
  EXPECT_TRUE(json_of(show)["metadata"]["dump"].contains("frozen_time")) << show.out;
  auto text = run_wpckpt({"show", "-D", (dir / "d1").string()});
  EXPECT_NE(text.out.find("frozen_time"), std::string::npos) << text.out;
}

TEST(DumpState, FdKinds) {
  SelfcheckWorkload w({"-t", "1", "-k"}, true);
  TempDir dir;
  auto r = run_wpckpt({"dump", "-t", std::to_string(w.pid()), "-D", (dir / "d").string(), "--leave-running"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  state::ProcessState st = load_state(dir / "d");
  std::map<std::string, std::vector<state::FdState>> by_kind;
  for (const auto& f : st.fds) by_kind[state::fd_kind_name(f.kind)].push_back(f);
  ASSERT_EQ(by_kind["eventfd"].size(), 1u);
  EXPECT_EQ(by_kind["eventfd"][0].details["count"], 5);
  EXPECT_TRUE(by_kind["eventfd"][0].cloexec);
  ASSERT_EQ(by_kind["epoll"].size(), 1u);
  ASSERT_EQ(by_kind["epoll"][0].details["targets"].size(), 1u);
  EXPECT_EQ(by_kind["epoll"][0].details["targets"][0]["fd"], by_kind["eventfd"][0].fd);
  EXPECT_EQ(by_kind["epoll"][0].details["targets"][0]["data"], 0x1234);
  ASSERT_EQ(by_kind["signalfd"].size(), 1u);
  EXPECT_EQ(by_kind["signalfd"][0].details["sigmask"], 1ull << (SIGUSR2 - 1));
  ASSERT_EQ(by_kind["timerfd"].size(), 1u);
  EXPECT_EQ(by_kind["timerfd"][0].details["it_interval"], nlohmann::json({1, 0}));
  ASSERT_EQ(by_kind["memfd"].size(), 1u);
  auto chain = image::ImageChain::open(dir / "d");
  ASSERT_TRUE(chain.ok());
  auto contents = (*chain)->read_file(by_kind["memfd"][0].details["contents_file"].get<std::string>());
  ASSERT_TRUE(contents.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(contents->data()), contents->size()), "memfd-contents");
  bool dir_root = false;
  for (const auto& f : by_kind["dir"]) dir_root |= f.file && f.file->path == "/";
  EXPECT_TRUE(dir_root);
  // Pipes: the selfcheck pipe (empty or a few sequence numbers) and one with "unread".
  bool unread = false;
  for (const auto& f : by_kind["pipe"])
    unread |= f.details.value("data", std::string()) == state::to_hex(std::vector<uint8_t>{'u', 'n', 'r', 'e', 'a', 'd'});
  EXPECT_TRUE(unread);
  EXPECT_FALSE(by_kind["devnull"].empty() && by_kind["tty"].empty() && by_kind["file"].empty());
  // Reading the pipe did not consume it: a second dump sees the same bytes.
  auto again = run_wpckpt({"dump", "-t", std::to_string(w.pid()), "-D", (dir / "d2").string(), "--leave-running"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  bool still = false;
  for (const auto& f : load_state(dir / "d2").fds)
    still |= f.kind == state::FdKind::Pipe && f.details.value("data", std::string()) == state::to_hex(std::vector<uint8_t>{'u', 'n', 'r', 'e', 'a', 'd'});
  EXPECT_TRUE(still);
  EXPECT_TRUE(w.keeps_computing()) << w.output();
}

TEST(DumpState, KillsTheProcessAfterTheCommit) {
  SelfcheckWorkload w({"-t", "2"}, true);
  TempDir dir;
  auto r = run_wpckpt({"dump", "-t", std::to_string(w.pid()), "-D", (dir / "d").string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int status = w.process().wait(std::chrono::seconds(10));
  ASSERT_NE(status, -1);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  // Its whole stop (CRIU's frozen_time) lasted until the kill: the capture,
  // then the commit. Whole microseconds each: 2 of rounding.
  auto doc = json_of(r);
  EXPECT_GE(doc.value("stopped_time", 0) + 2, doc.value("frozen_time", 0) + doc.value("commit_time", 0)) << r.out;
  EXPECT_EQ(doc.value("pages_prefetched", -1), 0) << "no parent: every page is read anyway, nothing to read first";
  EXPECT_EQ(run_wpckpt({"verify", "-D", (dir / "d").string()}).exit_code, 0);
  EXPECT_EQ(load_state(dir / "d").pid, w.pid());
}

}  // namespace
}  // namespace wpckpt::test
