// Our UAPI constants must coexist with the system's kernel headers (no
// macro or type clashes) and equal them wherever the installed headers have
// the value. Compiling this file is half the test.
#include <linux/fs.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

#include <gtest/gtest.h>

#include "lib/base/uapi/pagemap_scan.hpp"
#include "lib/base/uapi/process.hpp"
#include "lib/base/uapi/userfaultfd.hpp"

namespace wpckpt::uapi {
namespace {

TEST(Uapi, UserfaultfdValuesMatchInstalledHeaders) {
  EXPECT_EQ(kUffdApi, static_cast<uint64_t>(UFFD_API));
  EXPECT_EQ(kUffdioApi, static_cast<unsigned long>(UFFDIO_API));
  EXPECT_EQ(kUffdioRegister, static_cast<unsigned long>(UFFDIO_REGISTER));
  EXPECT_EQ(kUffdioUnregister, static_cast<unsigned long>(UFFDIO_UNREGISTER));
  EXPECT_EQ(kUffdioCopy, static_cast<unsigned long>(UFFDIO_COPY));
  EXPECT_EQ(kUffdioZeropage, static_cast<unsigned long>(UFFDIO_ZEROPAGE));
  EXPECT_EQ(kUffdioWriteprotect, static_cast<unsigned long>(UFFDIO_WRITEPROTECT));
  EXPECT_EQ(kUffdioContinue, static_cast<unsigned long>(UFFDIO_CONTINUE));
  EXPECT_EQ(kFeatWpHugetlbfsShmem, static_cast<uint64_t>(UFFD_FEATURE_WP_HUGETLBFS_SHMEM));
  EXPECT_EQ(kFeatExactAddress, static_cast<uint64_t>(UFFD_FEATURE_EXACT_ADDRESS));
  EXPECT_EQ(kRegisterModeWp, static_cast<uint64_t>(UFFDIO_REGISTER_MODE_WP));
  EXPECT_EQ(sizeof(UffdioApi), sizeof(struct uffdio_api));
  EXPECT_EQ(sizeof(UffdioRegister), sizeof(struct uffdio_register));
  EXPECT_EQ(sizeof(UffdioCopy), sizeof(struct uffdio_copy));
  EXPECT_EQ(sizeof(UffdMsg), sizeof(struct uffd_msg));
}

TEST(Uapi, ProcessValuesMatchInstalledHeaders) {
  EXPECT_EQ(kNrPidfdOpen, static_cast<long>(SYS_pidfd_open));
  EXPECT_EQ(kNrPidfdGetfd, static_cast<long>(SYS_pidfd_getfd));
  EXPECT_EQ(kNrClone3, static_cast<long>(SYS_clone3));
  EXPECT_EQ(kNrRseq, static_cast<long>(SYS_rseq));
  EXPECT_EQ(kNrBpf, static_cast<long>(SYS_bpf));
  EXPECT_EQ(kNrUserfaultfd, static_cast<long>(SYS_userfaultfd));
  EXPECT_EQ(kPtraceSeize, static_cast<long>(PTRACE_SEIZE));
  EXPECT_EQ(kPtraceInterrupt, static_cast<long>(PTRACE_INTERRUPT));
  EXPECT_EQ(kPtraceGetsigmask, static_cast<long>(PTRACE_GETSIGMASK));
  EXPECT_EQ(kPtraceGetRseqConfiguration, static_cast<long>(PTRACE_GET_RSEQ_CONFIGURATION));
  EXPECT_EQ(kPrSetMm, PR_SET_MM);
  EXPECT_EQ(kPrSetMmMap, PR_SET_MM_MAP);
  EXPECT_EQ(kPrSetMmMapSize, PR_SET_MM_MAP_SIZE);
  EXPECT_EQ(sizeof(CloneArgs), sizeof(struct clone_args));
  EXPECT_EQ(sizeof(PrctlMmMap), sizeof(struct prctl_mm_map));
}

TEST(Uapi, PagemapScanIsTheNumberTheKernelAccepts) {
  // The 6.1 headers lack PAGEMAP_SCAN; _IOWR('f', 16, 96-byte struct) by hand.
  EXPECT_EQ(kPagemapScan, static_cast<unsigned long>(_IOWR('f', 16, PmScanArg)));
}

}  // namespace
}  // namespace wpckpt::uapi
