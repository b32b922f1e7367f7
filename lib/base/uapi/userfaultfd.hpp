// userfaultfd UAPI that the installed 6.1 headers lack (WP_ASYNC,
// WP_UNPOPULATED, MOVE, POISON) — see docs/KERNEL.md §1.
// Everything lives in wpckpt::uapi as constexpr values and our own struct
// names, never as macros, so it cannot clash with newer <linux/userfaultfd.h>.
#pragma once

#include <cstdint>

namespace wpckpt::uapi {

constexpr long kNrUserfaultfd = 323;                 // x86_64
constexpr int kUffdUserModeOnly = 1;                 // userfaultfd(2) flag
constexpr unsigned long kUserfaultfdIocNew = 0x0000AA00;  // ioctl on /dev/userfaultfd
constexpr uint64_t kUffdApi = 0xAA;

// UFFDIO_API feature bits
constexpr uint64_t kFeatPagefaultFlagWp = 1ull << 0;
constexpr uint64_t kFeatEventFork = 1ull << 1;  // needs CAP_SYS_PTRACE
constexpr uint64_t kFeatEventRemap = 1ull << 2;
constexpr uint64_t kFeatEventRemove = 1ull << 3;
constexpr uint64_t kFeatMissingHugetlbfs = 1ull << 4;
constexpr uint64_t kFeatMissingShmem = 1ull << 5;
constexpr uint64_t kFeatEventUnmap = 1ull << 6;
constexpr uint64_t kFeatSigbus = 1ull << 7;
constexpr uint64_t kFeatThreadId = 1ull << 8;
constexpr uint64_t kFeatMinorHugetlbfs = 1ull << 9;
constexpr uint64_t kFeatMinorShmem = 1ull << 10;
constexpr uint64_t kFeatExactAddress = 1ull << 11;
constexpr uint64_t kFeatWpHugetlbfsShmem = 1ull << 12;
constexpr uint64_t kFeatWpUnpopulated = 1ull << 13;
constexpr uint64_t kFeatPoison = 1ull << 14;
constexpr uint64_t kFeatWpAsync = 1ull << 15;
constexpr uint64_t kFeatMove = 1ull << 16;

// ioctl numbers (magic 0xAA)
constexpr unsigned long kUffdioApi = 0xC018AA3F;
constexpr unsigned long kUffdioRegister = 0xC020AA00;
constexpr unsigned long kUffdioUnregister = 0x8010AA01;
constexpr unsigned long kUffdioWake = 0x8010AA02;
constexpr unsigned long kUffdioCopy = 0xC028AA03;
constexpr unsigned long kUffdioZeropage = 0xC020AA04;
constexpr unsigned long kUffdioMove = 0xC028AA05;
constexpr unsigned long kUffdioWriteprotect = 0xC018AA06;
constexpr unsigned long kUffdioContinue = 0xC020AA07;
constexpr unsigned long kUffdioPoison = 0xC020AA08;

// modes
constexpr uint64_t kRegisterModeMissing = 1, kRegisterModeWp = 2, kRegisterModeMinor = 4;
constexpr uint64_t kCopyModeDontwake = 1, kCopyModeWp = 2, kZeropageModeDontwake = 1;
constexpr uint64_t kWriteprotectModeWp = 1, kWriteprotectModeDontwake = 2;
constexpr uint64_t kContinueModeDontwake = 1;

// read(2) messages (struct uffd_msg, 32 bytes packed)
constexpr uint8_t kEventPagefault = 0x12, kEventFork = 0x13, kEventRemap = 0x14,
                  kEventRemove = 0x15, kEventUnmap = 0x16;
constexpr uint64_t kPagefaultFlagWrite = 1, kPagefaultFlagWp = 2, kPagefaultFlagMinor = 4;

struct UffdioApi {
  uint64_t api;
  uint64_t features;
  uint64_t ioctls;
};
struct UffdioRange {
  uint64_t start;
  uint64_t len;
};
struct UffdioRegister {
  UffdioRange range;
  uint64_t mode;
  uint64_t ioctls;
};
struct UffdioCopy {
  uint64_t dst, src, len, mode;
  int64_t copy;
};
struct UffdioZeropage {
  UffdioRange range;
  uint64_t mode;
  int64_t zeropage;
};
struct UffdioWriteprotect {
  UffdioRange range;
  uint64_t mode;
};
struct __attribute__((packed)) UffdMsg {
  uint8_t event;
  uint8_t reserved1;
  uint16_t reserved2;
  uint32_t reserved3;
  union {
    struct {
      uint64_t flags, address;
      uint32_t ptid;
    } pagefault;
    struct {
      uint32_t ufd;
    } fork;
    struct {
      uint64_t from, to, len;
    } remap;
    struct {
      uint64_t start, end;
    } remove;
    struct {
      uint64_t reserved1, reserved2, reserved3;
    } reserved;
  } arg;
};

static_assert(sizeof(UffdioApi) == 24);
static_assert(sizeof(UffdioRegister) == 32);
static_assert(sizeof(UffdioCopy) == 40);
static_assert(sizeof(UffdioZeropage) == 32);
static_assert(sizeof(UffdioWriteprotect) == 24);
static_assert(sizeof(UffdMsg) == 32);

}  // namespace wpckpt::uapi
