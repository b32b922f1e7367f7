#include "lib/ptrace/regs.hpp"

#include <cpuid.h>
#include <fmt/core.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

#include "lib/base/uapi/process.hpp"

namespace wpckpt::ptrace {
namespace {

std::string tid_context(pid_t tid) { return fmt::format("thread {}", tid); }

Result<void> getregset(pid_t tid, int note, void* buf, size_t len, size_t* got = nullptr) {
  struct iovec iov {buf, len};
  if (::ptrace(static_cast<__ptrace_request>(uapi::kPtraceGetregset), tid, reinterpret_cast<void*>(note), &iov) != 0)
    return errno_error("PTRACE_GETREGSET", tid_context(tid));
  if (got) *got = iov.iov_len;
  return ok();
}

Result<void> setregset(pid_t tid, int note, const void* buf, size_t len) {
  struct iovec iov {const_cast<void*>(buf), len};
  if (::ptrace(static_cast<__ptrace_request>(uapi::kPtraceSetregset), tid, reinterpret_cast<void*>(note), &iov) != 0)
    return errno_error("PTRACE_SETREGSET", tid_context(tid));
  return ok();
}

}  // namespace

Result<Registers> get_regs(pid_t tid) {
  Registers regs{};
  size_t got = 0;
  WPCKPT_TRY(getregset(tid, uapi::kNtPrstatus, &regs, sizeof regs, &got));
  if (got != sizeof regs) return make_error(EIO, "PTRACE_GETREGSET NT_PRSTATUS", "short read from " + tid_context(tid));
  return regs;
}

Result<void> set_regs(pid_t tid, const Registers& regs) {
  return setregset(tid, uapi::kNtPrstatus, &regs, sizeof regs);
}

uint32_t xsave_size() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid_count(0xD, 0, &eax, &ebx, &ecx, &edx)) return 512;
  return ebx;
}

uint64_t xcr0() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  __get_cpuid(1, &eax, &ebx, &ecx, &edx);
  if (!(ecx & bit_OSXSAVE)) return 0;
  uint32_t lo = 0, hi = 0;
  asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t{hi} << 32) | lo;
}

Result<std::vector<uint8_t>> get_xsave(pid_t tid) {
  std::vector<uint8_t> buf(xsave_size());
  size_t got = 0;
  WPCKPT_TRY(getregset(tid, uapi::kNtX86Xstate, buf.data(), buf.size(), &got));
  buf.resize(got);
  return buf;
}

Result<void> set_xsave(pid_t tid, const std::vector<uint8_t>& xsave) {
  return setregset(tid, uapi::kNtX86Xstate, xsave.data(), xsave.size());
}

Result<uint64_t> get_sigmask(pid_t tid) {
  uint64_t mask = 0;
  if (::ptrace(static_cast<__ptrace_request>(uapi::kPtraceGetsigmask), tid, sizeof mask, &mask) != 0)
    return errno_error("PTRACE_GETSIGMASK", tid_context(tid));
  return mask;
}

Result<void> set_sigmask(pid_t tid, uint64_t mask) {
  if (::ptrace(static_cast<__ptrace_request>(uapi::kPtraceSetsigmask), tid, sizeof mask, &mask) != 0)
    return errno_error("PTRACE_SETSIGMASK", tid_context(tid));
  return ok();
}

Result<std::vector<std::vector<uint8_t>>> peek_pending(pid_t tid, bool shared) {
  std::vector<std::vector<uint8_t>> out;
  constexpr int kBatch = 32;
  std::vector<uint8_t> buf(kSiginfoSize * kBatch);
  for (;;) {
    uapi::PtracePeeksiginfoArgs args{out.size(), shared ? uapi::kPtracePeeksiginfoShared : 0u, kBatch};
    long n = ::ptrace(static_cast<__ptrace_request>(uapi::kPtracePeeksiginfo), tid, &args, buf.data());
    if (n < 0) return errno_error("PTRACE_PEEKSIGINFO", tid_context(tid));
    for (long i = 0; i < n; ++i)
      out.emplace_back(buf.begin() + i * kSiginfoSize, buf.begin() + (i + 1) * kSiginfoSize);
    if (n < kBatch) return out;
  }
}

Result<RseqConfig> get_rseq(pid_t tid) {
  uapi::PtraceRseqConfiguration conf{};
  if (::ptrace(static_cast<__ptrace_request>(uapi::kPtraceGetRseqConfiguration), tid, sizeof conf, &conf) < 0)
    return errno_error("PTRACE_GET_RSEQ_CONFIGURATION", tid_context(tid));
  return RseqConfig{conf.rseq_abi_pointer, conf.rseq_abi_size, conf.signature, conf.flags};
}

Result<bool> rseq_fixup_ip(int mem_fd, const RseqConfig& rseq, Registers& regs) {
  if (rseq.abi_pointer == 0) return false;
  // struct rseq: u32 cpu_id_start, u32 cpu_id, u64 rseq_cs, ...
  uint64_t cs_ptr = 0;
  WPCKPT_TRY(read_memory(mem_fd, rseq.abi_pointer + 8, &cs_ptr, sizeof cs_ptr));
  if (cs_ptr == 0) return false;
  struct {
    uint32_t version, flags;
    uint64_t start_ip, post_commit_offset, abort_ip;
  } cs{};
  WPCKPT_TRY(read_memory(mem_fd, cs_ptr, &cs, sizeof cs));
  if (regs.rip < cs.start_ip || regs.rip - cs.start_ip >= cs.post_commit_offset) return false;
  regs.rip = cs.abort_ip;
  return true;
}

Result<void> read_memory(int mem_fd, uint64_t addr, void* out, size_t len) {
  auto* p = static_cast<char*>(out);
  while (len > 0) {
    ssize_t n = ::pread(mem_fd, p, len, static_cast<off_t>(addr));
    if (n <= 0) return n < 0 ? errno_error("read target memory", fmt::format("at {:#x}", addr))
                             : make_error(EIO, "read target memory", fmt::format("at {:#x}", addr));
    p += n, addr += n, len -= n;
  }
  return ok();
}

Result<void> write_memory(int mem_fd, uint64_t addr, const void* data, size_t len) {
  auto* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = ::pwrite(mem_fd, p, len, static_cast<off_t>(addr));
    if (n <= 0) return n < 0 ? errno_error("write target memory", fmt::format("at {:#x}", addr))
                             : make_error(EIO, "write target memory", fmt::format("at {:#x}", addr));
    p += n, addr += n, len -= n;
  }
  return ok();
}

}  // namespace wpckpt::ptrace
