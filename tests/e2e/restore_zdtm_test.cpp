// zdtm-style end-to-end tests: a workload sets up state, is pre-dumped and
// dumped (killed), restored by `wpckpt restore`, told by SIGUSR1 that it was
// restored, checks its own state and prints PASS. wpckpt restore (not
// detached) ends with the workload's exit status.
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "lib/base/uapi/memory.hpp"
#include "tests/e2e/restore_helpers.hpp"

namespace wpckpt::test {
namespace {

// Restores `image` (default: c.last), signals the workload, expects exit 0
// and PASS in its output.
void restore_and_check(const Checkpointed& c, const std::filesystem::path& image = {}) {
  KillByPid guard{c.pid};  // if wpckpt restore is killed first, its child is orphaned, not killed
  ChildProcess restore = start_restore(image.empty() ? c.last : image, c.pid);
  ASSERT_EQ(::kill(c.pid, SIGUSR1), 0);
  int status = restore.wait(std::chrono::seconds(60));
  EXPECT_EQ(exit_code_of(status), 0) << read_file(c.out);
  EXPECT_NE(read_file(c.out).find("PASS"), std::string::npos) << read_file(c.out);
  EXPECT_EQ(read_file(c.out).find("FAIL"), std::string::npos) << read_file(c.out);
}

TEST(RestoreZdtm, SingleThreadCounter) {
  Checkpointed c;
  checkpoint(c, {workload("zdtm_counter"), "0", "8"}, "READY");
  restore_and_check(c);
}

TEST(RestoreZdtm, ThreadsWithMutexesAndCondvars) {
  Checkpointed c;
  checkpoint(c, {workload("zdtm_counter"), "4", "32"}, "READY", 2);
  restore_and_check(c);
}

TEST(RestoreZdtm, BigHeapWithTransparentHugePages) {
  Checkpointed c;
  checkpoint(c, {workload("zdtm_counter"), "2", "256", "thp"}, "READY", 1);
  restore_and_check(c);
}

// By default, past its first 8 MiB a pre-dump's page data goes around the
// page cache (O_DIRECT, in 4 MiB writes and a last partial block through the
// cache: the other big heaps here); --buffered-io writes it all through the
// cache. Either chain restores the heap exactly.
TEST(RestoreZdtm, BigHeapWrittenThroughThePageCache) {
  Checkpointed c;
  c.pre_dump_flags = {"--buffered-io"};
  c.dump_flags = {"--buffered-io"};
  checkpoint(c, {workload("zdtm_counter"), "2", "128"}, "READY", 1);
  EXPECT_GT(std::filesystem::file_size(c.dir / "pre0" / "pages.dat"), 16u << 20) << "too small to reach O_DIRECT";
  EXPECT_EQ(run_wpckpt({"verify", "-D", c.last.string()}).exit_code, 0);
  restore_and_check(c);
}

TEST(RestoreZdtm, SignalHandlersBlockedAndPendingSignals) {
  Checkpointed c;
  checkpoint(c, {workload("zdtm_signals")}, "READY");
  restore_and_check(c);
}

TEST(RestoreZdtm, FilesAtOffsetsPipesAndMappedFiles) {
  Checkpointed c;
  std::string data = (c.dir / "data").string();
  checkpoint(c, {workload("zdtm_files"), data}, "READY");
  restore_and_check(c);
  // O_TRUNC|O_CREAT were not applied again: the bytes written before the dump are there.
  EXPECT_EQ(read_file(data + ".log").rfind("before dump\n", 0), 0u);
}

TEST(RestoreZdtm, FrozenInsideSyscallsAndTimers) {
  Checkpointed c;
  checkpoint(c, {workload("zdtm_syscalls")}, "READY");
  restore_and_check(c);
}

// Issue 15 item 4: an ITIMER_REAL and two POSIX timers (SIGEV_SIGNAL with a
// value, SIGEV_THREAD_ID) come back with their ids and keep firing.
TEST(RestoreZdtm, IntervalAndPosixTimersKeepTheirIdsAndFire) {
  Checkpointed c;
  checkpoint(c, {workload("zdtm_timers")}, "READY", 2);
  auto st = nlohmann::json::parse(read_file(c.last / "process.json"), nullptr, false);
  ASSERT_FALSE(st.is_discarded());
  EXPECT_EQ(st.value("posix_timers", nlohmann::json::array()).size(), 2u) << st.dump().substr(0, 200);
  EXPECT_EQ(st.value("itimers", nlohmann::json::array()).size(), 1u);
  restore_and_check(c);
}

// Guard regions (MADV_GUARD_INSTALL) come back exactly: two installed before
// the pre-dump; after it, one removed (and its page written) and one added
// in an area that had none (the dump looks for guards only in areas smaps
// marks "gu", so this area must be marked by then).
TEST(RestoreZdtm, GuardRegionsComeBackWhereTheyWere) {
  void* probe = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(probe, MAP_FAILED);
  bool guards = madvise(probe, 4096, uapi::kMadvGuardInstall) == 0;
  munmap(probe, 4096);
  if (!guards) GTEST_SKIP() << "this kernel has no MADV_GUARD_INSTALL (Linux 6.13+)";
  Checkpointed c;
  checkpoint(c, {workload("zdtm_guards")}, "READY", 1, [&] {
    ASSERT_EQ(::kill(c.pid, SIGUSR2), 0);
    ASSERT_TRUE(wait_until([&] { return read_file(c.out).find("GUARDED") != std::string::npos; })) << read_file(c.out);
  });
  auto st = nlohmann::json::parse(read_file(c.last / "process.json"), nullptr, false);
  ASSERT_FALSE(st.is_discarded());
  size_t guarded_areas = 0;
  for (const auto& m : st.value("mappings", nlohmann::json::array()))
    if (!m.value("guards", nlohmann::json::array()).empty()) ++guarded_areas;
  EXPECT_EQ(guarded_areas, 2u) << "areas A and B hold guard regions";
  restore_and_check(c);
}

// Without prctl(PR_TIMER_CREATE_RESTORE_IDS) the ids cannot be given back:
// restore refuses before it starts anything, and the image still restores.
TEST(RestoreZdtm, PosixTimersRefusedWithoutRestoreIds) {
  Checkpointed c;
  checkpoint(c, {workload("zdtm_timers")}, "READY");
  CommandResult r = run_wpckpt({"restore", "-D", c.last.string()},
                               {"WPCKPT_DISABLE_FEATURES=timer_create_restore_ids"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("POSIX timer"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("timer_create_restore_ids"), std::string::npos) << r.err;
  EXPECT_TRUE(pid_gone(c.pid));
  restore_and_check(c);
}

TEST(RestoreZdtm, RestoreTwiceFromOneChainAndAfterMerge) {
  Checkpointed c;
  checkpoint(c, {workload("zdtm_counter"), "2", "16"}, "READY", 2);
  restore_and_check(c);
  ASSERT_TRUE(wait_until([&] { return pid_gone(c.pid); }));
  restore_and_check(c);
  ASSERT_TRUE(wait_until([&] { return pid_gone(c.pid); }));
  CommandResult m = run_wpckpt({"merge", "-D", c.last.string(), "-o", (c.dir / "merged").string()});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  restore_and_check(c, c.dir / "merged");
}

TEST(RestoreZdtm, RestoredProcessIsCheckpointedAgain) {
  Checkpointed c;
  checkpoint(c, {workload("zdtm_counter"), "2", "16"}, "READY", 1);
  {
    KillByPid guard{c.pid};
    ChildProcess restore = start_restore(c.last, c.pid);
    // The agent's uffd and state page are back: pre-dump and dump work again.
    CommandResult pre = run_wpckpt({"pre-dump", "-t", std::to_string(c.pid), "-D", (c.dir / "again-pre").string()});
    ASSERT_EQ(pre.exit_code, 0) << pre.err;
    CommandResult dump = run_wpckpt({"dump", "-t", std::to_string(c.pid), "-D", (c.dir / "again").string(),
                                     "--prev-images-dir", (c.dir / "again-pre").string()});
    ASSERT_EQ(dump.exit_code, 0) << dump.err;
    EXPECT_EQ(exit_code_of(restore.wait()), 128 + SIGKILL);  // the dump killed it; wpckpt restore says so
  }
  restore_and_check(c, c.dir / "again");
}

TEST(RestoreZdtm, ChainOfTwentyPreDumps) {
  Checkpointed c;
  checkpoint(c, {workload("zdtm_counter"), "2", "8"}, "READY", 20);
  restore_and_check(c);
}

TEST(RestoreCli, DetachedPrintsThePidAndRefusesAPidInUse) {
  Checkpointed c;
  checkpoint(c, {workload("zdtm_counter"), "1", "8"}, "READY");
  // Files, not pipes, for wpckpt's output: the restored process inherits its
  // stderr (the workload's was not a file) and keeps it open.
  std::string out = c.dir / "restore.out", err = c.dir / "restore.err";
  ChildProcess restore = ChildProcess::start({wpckpt_binary(), "restore", "-D", c.last.string(), "-d", "--json"}, {},
                                             out, err);
  KillByPid guard{c.pid};
  ASSERT_EQ(exit_code_of(restore.wait()), 0) << read_file(err);
  auto doc = nlohmann::json::parse(read_file(out));
  EXPECT_EQ(doc["pid"].get<int>(), c.pid);
  EXPECT_GT(doc["pages_restored"].get<uint64_t>(), 2048u);
  EXPECT_GT(doc["pages_kept_from_file"].get<uint64_t>(), 0u) << doc.dump();  // libc's code, left to the file
  EXPECT_GT(doc["gb_per_s"].get<double>(), 0.0);
  EXPECT_EQ(waitpid(c.pid, nullptr, WNOHANG), -1);  // re-parented: not our child
  // A second restore while it runs: the pid is in use, named in the error, nothing is created.
  CommandResult again = run_wpckpt({"restore", "-D", c.last.string()});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("pid " + std::to_string(c.pid)), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("zdtm_counter"), std::string::npos) << again.err;
  ASSERT_EQ(::kill(c.pid, SIGUSR1), 0);
  EXPECT_TRUE(wait_until([&] { return read_file(c.out).find("PASS") != std::string::npos; })) << read_file(c.out);
}

TEST(RestoreCli, AChangedMappedFileIsRefusedAndNothingIsLeft) {
  Checkpointed c;
  std::string data = c.dir / "data";
  checkpoint(c, {workload("zdtm_files"), data}, "READY");
  { std::ofstream(data, std::ios::app) << "changed after the dump"; }
  CommandResult r = run_wpckpt({"restore", "-D", c.last.string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("file changed"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(data), std::string::npos) << r.err;
  EXPECT_TRUE(pid_gone(c.pid));
}

}  // namespace
}  // namespace wpckpt::test
