// Syscall injection into real workloads: results, side effects, and that the
// thread comes out exactly as it went in (registers, mask, no scratch area),
// also when the tracer dies in the middle of an injection.
#include "lib/ptrace/injector.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "lib/base/uapi/process.hpp"
#include "lib/ptrace/freezer.hpp"
#include "tests/support/selfcheck_workload.hpp"

namespace wpckpt::ptrace {
namespace {

std::string maps_of(pid_t pid) { return test::read_file("/proc/" + std::to_string(pid) + "/maps"); }

bool same_regs(const Registers& a, const Registers& b) { return std::memcmp(&a, &b, sizeof a) == 0; }

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

}  // namespace
}  // namespace wpckpt::ptrace
