// Syscall injection into real workloads: results, side effects, and that the
// thread comes out exactly as it went in (registers, mask, no scratch area),
// also when the tracer dies in the middle of an injection.
#include "lib/ptrace/injector.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <vector>

#include "lib/base/uapi/process.hpp"
#include "lib/ptrace/freezer.hpp"
#include "tests/support/selfcheck_workload.hpp"

namespace wpckpt::ptrace {
namespace {

std::string maps_of(pid_t pid) { return test::read_file("/proc/" + std::to_string(pid) + "/maps"); }

bool same_regs(const Registers& a, const Registers& b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// Whether this kernel names anonymous areas (CONFIG_ANON_VMA_NAME), asked on a page of ours.
bool kernel_names_areas() {
  void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  const bool names = p != MAP_FAILED && ::prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, p, 4096, "probe") == 0;
  if (p != MAP_FAILED) ::munmap(p, 4096);
  return names;
}

TEST(Injector, GetpidMmapAndSigactionThenCure) {
  test::SelfcheckWorkload w({"-t", "2"});
  auto frozen = Freezer::freeze(w.pid());
  ASSERT_TRUE(frozen.ok()) << frozen.error().message();
  // A non-main thread of a multi-threaded process.
  pid_t tid = frozen->tids().back();
  ASSERT_NE(tid, w.pid());
  auto before = get_regs(tid);
  ASSERT_TRUE(before.ok());
  auto mask_before = get_sigmask(tid);
  ASSERT_TRUE(mask_before.ok());
  {
    auto inj = Injector::prepare(tid);
    ASSERT_TRUE(inj.ok()) << inj.error().message();
    Injector& in = **inj;
    char range[64];
    snprintf(range, sizeof range, "%llx-%llx rwxp", static_cast<unsigned long long>(in.scratch()),
             static_cast<unsigned long long>(in.scratch() + Injector::kScratchSize));
    EXPECT_NE(maps_of(w.pid()).find(range), std::string::npos);
    auto pid = in.syscall(SYS_getpid);
    ASSERT_TRUE(pid.ok());
    EXPECT_EQ(*pid, w.pid());
    auto gettid_r = in.syscall(SYS_gettid);
    ASSERT_TRUE(gettid_r.ok());
    EXPECT_EQ(*gettid_r, tid);
    // A failing call returns -errno.
    auto bad = in.syscall(SYS_close, 999999);
    ASSERT_TRUE(bad.ok());
    EXPECT_EQ(*bad, -EBADF);
    // mmap + write + read back + munmap.
    auto addr = in.syscall(SYS_mmap, 0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_TRUE(addr.ok());
    ASSERT_GT(*addr, 0);
    char text[] = "hello target";
    ASSERT_TRUE(in.write(*addr, text, sizeof text).ok());
    char back[sizeof text] = {};
    ASSERT_TRUE(in.read(*addr, back, sizeof back).ok());
    EXPECT_STREQ(back, text);
    auto unmapped = in.syscall(SYS_munmap, *addr, 8192);
    ASSERT_TRUE(unmapped.ok());
    EXPECT_EQ(*unmapped, 0);
    // The workload's SIGUSR1 handler (SA_RESTART) and SIGUSR2 at default.
    wpckpt::uapi::KernelSigaction act{};
    auto rc = in.syscall(SYS_rt_sigaction, SIGUSR1, 0, in.data(), 8);
    ASSERT_TRUE(rc.ok());
    ASSERT_EQ(*rc, 0);
    ASSERT_TRUE(in.read(in.data(), &act, sizeof act).ok());
    EXPECT_NE(act.handler, 0u);
    EXPECT_TRUE(act.flags & SA_RESTART);
    EXPECT_TRUE(act.flags & 0x04000000) << "SA_RESTORER";
    rc = in.syscall(SYS_rt_sigaction, SIGUSR2, 0, in.data(), 8);
    ASSERT_TRUE(rc.ok() && *rc == 0);
    ASSERT_TRUE(in.read(in.data(), &act, sizeof act).ok());
    EXPECT_EQ(act.handler, 0u) << "SIG_DFL";
    ASSERT_TRUE(in.cure().ok());
  }
  EXPECT_EQ(maps_of(w.pid()).find("rwxp"), std::string::npos);
  auto after = get_regs(tid);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(same_regs(*before, *after));
  EXPECT_EQ(*get_sigmask(tid), *mask_before);
  frozen->detach();
  EXPECT_TRUE(w.keeps_computing()) << w.output();
}

TEST(Injector, DestructorCuresOnEveryThreadInTurn) {
  test::SelfcheckWorkload w({"-t", "3"});
  for (int round = 0; round < 3; ++round) {
    auto frozen = Freezer::freeze(w.pid());
    ASSERT_TRUE(frozen.ok()) << frozen.error().message();
    for (pid_t tid : frozen->tids()) {
      auto before = get_regs(tid);
      ASSERT_TRUE(before.ok());
      {
        auto inj = Injector::prepare(tid);
        ASSERT_TRUE(inj.ok()) << inj.error().message();
        for (int i = 0; i < 20; ++i) ASSERT_TRUE((*inj)->syscall(SYS_getppid).ok());
      }  // no explicit cure
      EXPECT_TRUE(same_regs(*before, *get_regs(tid))) << "thread " << tid;
    }
  }
  EXPECT_EQ(maps_of(w.pid()).find("rwxp"), std::string::npos);
  EXPECT_TRUE(w.keeps_computing()) << w.output();
}

TEST(Injector, ScratchAtAGivenAddress) {
  test::SelfcheckWorkload w;
  auto frozen = Freezer::freeze(w.pid());
  ASSERT_TRUE(frozen.ok());
  InjectorOptions options;
  options.scratch_address = 0x7e0000000000;
  auto inj = Injector::prepare(w.pid(), options);
  ASSERT_TRUE(inj.ok()) << inj.error().message();
  EXPECT_EQ((*inj)->scratch(), options.scratch_address);
  EXPECT_NE(maps_of(w.pid()).find("7e0000000000-7e0000008000"), std::string::npos);
}

// The tracer (a forked child of the test) dies with SIGKILL while a thread is
// parked in the middle of an injection: the thread must recover by itself.
TEST(Injector, TracerDeathMidInjectionIsHarmless) {
  test::SelfcheckWorkload w({"-t", "2"});
  for (int round = 0; round < 5; ++round) {
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    pid_t tracer = fork();
    ASSERT_GE(tracer, 0);
    if (tracer == 0) {
      close(ready[0]);
      auto frozen = Freezer::freeze(w.pid());
      if (!frozen) _exit(2);
      std::vector<std::unique_ptr<Injector>> injectors;
      for (pid_t tid : frozen->tids()) {
        auto inj = Injector::prepare(tid);
        if (!inj) _exit(3);
        if (!(*inj)->syscall(SYS_getpid)) _exit(4);
        injectors.push_back(std::move(*inj));
      }
      char c = 'k';
      if (write(ready[1], &c, 1) != 1) _exit(5);
      raise(SIGKILL);  // dies with every thread parked at a stub syscall stop
      _exit(6);
    }
    close(ready[1]);
    char c = 0;
    ASSERT_EQ(read(ready[0], &c, 1), 1) << "tracer failed";
    close(ready[0]);
    int status = 0;
    ASSERT_EQ(waitpid(tracer, &status, 0), tracer);
    ASSERT_TRUE(WIFSIGNALED(status));
    ASSERT_TRUE(w.keeps_computing()) << "round " << round << ": " << w.output();
    // The scratch areas stay behind (nobody could unmap them): the proof
    // that the threads really were mid-injection.
    EXPECT_NE(maps_of(w.pid()).find("rwxp"), std::string::npos);
    // Every thread is back on its own mask (SIGUSR2 blocked, nothing else).
    for (pid_t tid : w.threads()) {
      std::string status_text =
          test::read_file("/proc/" + std::to_string(w.pid()) + "/task/" + std::to_string(tid) + "/status");
      EXPECT_NE(status_text.find("SigBlk:\t0000000000000800"), std::string::npos) << status_text;
      EXPECT_NE(status_text.find("TracerPid:\t0"), std::string::npos);
    }
  }
}

// A batch gives what the same calls give one by one, in order, and the
// thread comes out of it as it went in.
TEST(Injector, BatchRunsEveryCallInOrder) {
  test::SelfcheckWorkload w({"-t", "2"});
  auto frozen = Freezer::freeze(w.pid());
  ASSERT_TRUE(frozen.ok()) << frozen.error().message();
  pid_t tid = frozen->tids().back();
  auto before = get_regs(tid);
  ASSERT_TRUE(before.ok());
  {
    auto inj = Injector::prepare(tid);
    ASSERT_TRUE(inj.ok()) << inj.error().message();
    Injector& in = **inj;
    const uint64_t usr1 = in.data(), usr2 = in.data() + 32;
    std::vector<Injector::Call> calls = {
        {SYS_getpid, {}},
        {SYS_gettid, {}},
        {SYS_close, {999999}},
        {SYS_rt_sigaction, {SIGUSR1, 0, usr1, 8}},
        {SYS_rt_sigaction, {SIGUSR2, 0, usr2, 8}},
        {SYS_mmap, {0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, static_cast<uint64_t>(-1), 0}},
    };
    // The scratch area is named by the first batch (its own first call), not before.
    EXPECT_EQ(maps_of(w.pid()).find("[anon:wpckpt-scratch]"), std::string::npos);
    auto rc = in.batch(calls);
    ASSERT_TRUE(rc.ok()) << rc.error().message();
    ASSERT_EQ(rc->size(), calls.size());
    if (kernel_names_areas()) {
      EXPECT_NE(maps_of(w.pid()).find("[anon:wpckpt-scratch]"), std::string::npos);
    }
    EXPECT_EQ((*rc)[0], w.pid());
    EXPECT_EQ((*rc)[1], tid);
    EXPECT_EQ((*rc)[2], -EBADF);
    EXPECT_EQ((*rc)[3], 0);
    EXPECT_EQ((*rc)[4], 0);
    ASSERT_GT((*rc)[5], 0);
    wpckpt::uapi::KernelSigaction act{};
    ASSERT_TRUE(in.read(usr1, &act, sizeof act).ok());
    EXPECT_NE(act.handler, 0u);
    EXPECT_TRUE(act.flags & SA_RESTART);
    ASSERT_TRUE(in.read(usr2, &act, sizeof act).ok());
    EXPECT_EQ(act.handler, 0u) << "SIG_DFL";
    // A single call after a batch, then a second batch that uses the first's result.
    auto unmapped = in.syscall(SYS_munmap, static_cast<uint64_t>((*rc)[5]), 8192);
    ASSERT_TRUE(unmapped.ok());
    EXPECT_EQ(*unmapped, 0);
    std::vector<Injector::Call> again(Injector::kBatchMaxCalls, Injector::Call{SYS_getppid, {}});
    auto rc2 = in.batch(again);
    ASSERT_TRUE(rc2.ok()) << rc2.error().message();
    for (long v : *rc2) EXPECT_EQ(v, getpid());
    again.push_back({SYS_getppid, {}});
    EXPECT_EQ(in.batch(again).error().err, E2BIG);
    ASSERT_TRUE(in.cure().ok());
  }
  EXPECT_EQ(maps_of(w.pid()).find("rwxp"), std::string::npos);
  EXPECT_TRUE(same_regs(*before, *get_regs(tid)));
  frozen->detach();
  EXPECT_TRUE(w.keeps_computing()) << w.output();
}

// The batches of all threads begun before any ends (as state capture runs
// them), each with its own results; a batch left running is ended by cure.
TEST(Injector, BatchesOfEveryThreadRunAtOnce) {
  test::SelfcheckWorkload w({"-t", "3"});
  auto frozen = Freezer::freeze(w.pid());
  ASSERT_TRUE(frozen.ok()) << frozen.error().message();
  const std::vector<pid_t>& tids = frozen->tids();
  ASSERT_GE(tids.size(), 4u);  // -t 3: the main thread, 3 workers, and the workload's helpers
  std::vector<Registers> before;
  for (pid_t tid : tids) before.push_back(*get_regs(tid));
  {
    std::vector<std::unique_ptr<Injector>> injectors;
    InjectorOptions options;
    options.scratch_slots = tids.size();
    for (size_t i = 0; i < tids.size(); ++i) {
      if (i > 0) options.slot = injectors.front()->slot_address(i);
      auto inj = Injector::prepare(tids[i], options);
      ASSERT_TRUE(inj.ok()) << inj.error().message();
      injectors.push_back(std::move(*inj));
    }
    const Injector::Call calls[] = {{SYS_gettid, {}}, {SYS_getpid, {}}};
    for (auto& inj : injectors) ASSERT_TRUE(inj->begin_batch(calls).ok());
    EXPECT_EQ(injectors[0]->begin_batch(calls).error().err, EBUSY);
    for (auto& inj : injectors) ASSERT_TRUE(inj->interrupt_batch().ok());
    for (size_t i = 0; i < tids.size(); ++i) {
      auto rc = injectors[i]->end_batch();
      ASSERT_TRUE(rc.ok()) << rc.error().message();
      EXPECT_EQ(*rc, (std::vector<long>{tids[i], w.pid()}));
    }
    EXPECT_EQ(injectors[1]->end_batch().error().err, EINVAL);
    // Begun and never ended, as after a failure elsewhere: cure ends them.
    for (size_t i = 1; i < tids.size(); ++i) ASSERT_TRUE(injectors[i]->begin_batch(calls).ok());
    ASSERT_TRUE(injectors[1]->interrupt_batch().ok());
    for (size_t i = tids.size(); i-- > 0;) EXPECT_TRUE(injectors[i]->cure().ok()) << "thread " << tids[i];
  }
  for (size_t i = 0; i < tids.size(); ++i)
    EXPECT_TRUE(same_regs(before[i], *get_regs(tids[i]))) << "thread " << tids[i];
  EXPECT_EQ(maps_of(w.pid()).find("rwxp"), std::string::npos);
  frozen->detach();
  EXPECT_TRUE(w.keeps_computing()) << w.output();
}

// The tracer dies while a batch runs (a slow call in it) and, in the second
// round, while the thread waits after its batch: either way the thread
// finishes, waits kBatchWaitSeconds for nobody and goes back to its own code.
TEST(Injector, TracerDeathDuringOrAfterBatchIsHarmless) {
  test::SelfcheckWorkload w;
  for (int round = 0; round < 2; ++round) {
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    pid_t tracer = fork();
    ASSERT_GE(tracer, 0);
    if (tracer == 0) {
      close(ready[0]);
      auto frozen = Freezer::freeze(w.pid());
      if (!frozen) _exit(2);
      auto inj = Injector::prepare(w.pid());
      if (!inj) _exit(3);
      struct timespec nap {0, 300'000'000};
      if (!(*inj)->write((*inj)->data(), &nap, sizeof nap)) _exit(4);
      std::vector<Injector::Call> calls = {{SYS_getpid, {}}};
      if (round == 0) calls.push_back({SYS_nanosleep, {(*inj)->data(), 0}});
      char c = 'k';
      if (round == 0 && write(ready[1], &c, 1) != 1) _exit(5);
      auto rc = (*inj)->batch(calls);  // round 0: killed in here
      if (!rc) _exit(6);
      if (write(ready[1], &c, 1) != 1) _exit(5);
      raise(SIGKILL);  // round 1: dies with the thread waiting in the stub
      _exit(7);
    }
    close(ready[1]);
    char c = 0;
    ASSERT_EQ(read(ready[0], &c, 1), 1) << "tracer failed";
    close(ready[0]);
    if (round == 0) {
      usleep(100'000);
      kill(tracer, SIGKILL);
    }
    int status = 0;
    ASSERT_EQ(waitpid(tracer, &status, 0), tracer);
    ASSERT_TRUE(WIFSIGNALED(status)) << "tracer exited " << WEXITSTATUS(status);
    ASSERT_TRUE(w.keeps_computing()) << "round " << round << ": " << w.output();
    EXPECT_NE(maps_of(w.pid()).find("rwxp"), std::string::npos) << "the thread was not mid-injection";
    std::string status_text = test::read_file("/proc/" + std::to_string(w.pid()) + "/status");
    EXPECT_NE(status_text.find("SigBlk:\t0000000000000800"), std::string::npos) << status_text;
    EXPECT_NE(status_text.find("TracerPid:\t0"), std::string::npos);
  }
}

}  // namespace
}  // namespace wpckpt::ptrace
