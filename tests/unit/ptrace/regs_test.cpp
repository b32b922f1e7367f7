// Per-thread state read through ptrace, compared with what /proc and the
// workload itself say.
#include "lib/ptrace/regs.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "lib/base/uapi/process.hpp"
#include "lib/ptrace/freezer.hpp"
#include "tests/support/selfcheck_workload.hpp"

namespace wpckpt::ptrace {
namespace {

TEST(Regs, GeneralRegistersAndXsaveRoundTrip) {
  test::SelfcheckWorkload w({"-t", "2"});
  auto frozen = Freezer::freeze(w.pid());
  ASSERT_TRUE(frozen.ok()) << frozen.error().message();
  for (pid_t tid : frozen->tids()) {
    auto regs = get_regs(tid);
    ASSERT_TRUE(regs.ok()) << regs.error().message();
    EXPECT_NE(regs->fs_base, 0u) << "glibc threads have a TLS pointer";
    EXPECT_NE(regs->rip, 0u);
    auto xsave = get_xsave(tid);
    ASSERT_TRUE(xsave.ok()) << xsave.error().message();
    ASSERT_EQ(xsave->size(), xsave_size());
    uint64_t xcr0_in_area = 0;
    std::memcpy(&xcr0_in_area, xsave->data() + 464, 8);
    EXPECT_EQ(xcr0_in_area, xcr0());
    // Change xmm0 (legacy area offset 160), read it back, put it back.
    auto changed = *xsave;
    for (int i = 0; i < 16; ++i) changed[160 + i] ^= 0x5a;
    ASSERT_TRUE(set_xsave(tid, changed).ok());
    auto again = get_xsave(tid);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(std::memcmp(again->data() + 160, changed.data() + 160, 16), 0);
    ASSERT_TRUE(set_xsave(tid, *xsave).ok());
    ASSERT_TRUE(set_regs(tid, *regs).ok());
  }
  frozen->detach();
  EXPECT_TRUE(w.keeps_computing()) << w.output();
}

TEST(Regs, SignalMaskPendingSignalsAndRseq) {
  test::SelfcheckWorkload w({"-t", "1"});
  pid_t main_tid = w.pid();
  // SIGUSR2 is blocked by the workload: one private, one shared instance.
  ASSERT_EQ(syscall(SYS_tgkill, w.pid(), main_tid, SIGUSR2), 0);
  ASSERT_EQ(kill(w.pid(), SIGUSR2), 0);
  auto frozen = Freezer::freeze(w.pid());
  ASSERT_TRUE(frozen.ok()) << frozen.error().message();
  auto mask = get_sigmask(main_tid);
  ASSERT_TRUE(mask.ok());
  EXPECT_EQ(*mask, 1ull << (SIGUSR2 - 1));
  auto priv = peek_pending(main_tid, false);
  ASSERT_TRUE(priv.ok()) << priv.error().message();
  ASSERT_EQ(priv->size(), 1u);
  int signo = 0;
  std::memcpy(&signo, (*priv)[0].data(), sizeof signo);
  EXPECT_EQ(signo, SIGUSR2);
  auto shared = peek_pending(main_tid, true);
  ASSERT_TRUE(shared.ok());
  ASSERT_EQ(shared->size(), 1u);
  std::memcpy(&signo, (*shared)[0].data(), sizeof signo);
  EXPECT_EQ(signo, SIGUSR2);
  auto rseq = get_rseq(main_tid);
  ASSERT_TRUE(rseq.ok()) << rseq.error().message();
  EXPECT_NE(rseq->abi_pointer, 0u);
  EXPECT_EQ(rseq->signature, uapi::kGlibcRseqSignature);
  // Mask changes are seen by /proc and undone.
  ASSERT_TRUE(set_sigmask(main_tid, *mask | (1ull << (SIGUSR1 - 1))).ok());
  EXPECT_NE(test::read_file("/proc/" + std::to_string(w.pid()) + "/status").find("SigBlk:\t0000000000000a00"),
            std::string::npos);
  ASSERT_TRUE(set_sigmask(main_tid, *mask).ok());
  // Not inside a critical section while sleeping: no fix-up.
  std::string mem = "/proc/" + std::to_string(w.pid()) + "/mem";
  int fd = open(mem.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto regs = get_regs(main_tid);
  ASSERT_TRUE(regs.ok());
  Registers copy = *regs;
  auto moved = rseq_fixup_ip(fd, *rseq, copy);
  close(fd);
  ASSERT_TRUE(moved.ok()) << moved.error().message();
  EXPECT_FALSE(*moved);
  EXPECT_EQ(copy.rip, regs->rip);
  frozen->detach();
  EXPECT_TRUE(w.keeps_computing()) << w.output();
}

}  // namespace
}  // namespace wpckpt::ptrace
