#include "lib/dump/process_capture.hpp"


#include <fmt/core.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "lib/base/parse_number.hpp"
#include "lib/base/text_file.hpp"
#include "lib/base/uapi/process.hpp"
#include "lib/dump/fault_point.hpp"
#include "lib/dump/timer_capture.hpp"
#include "lib/ptrace/injector.hpp"
#include "lib/ptrace/regs.hpp"
#include "tracker/proc_maps.hpp"

namespace wpckpt::dump {
namespace {

constexpr int kRlimitCount = 16;  // RLIM_NLIMITS on x86_64

std::string proc(pid_t pid, const char* what) { return fmt::format("/proc/{}/{}", pid, what); }

// /proc/PID/stat: comm, then the fields after ")" (field 3 onwards).
Result<void> read_stat(pid_t pid, state::ProcessState& out) {
  WPCKPT_TRY_ASSIGN(std::string text, read_text(proc(pid, "stat")));
  size_t open = text.find('('), close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos)
    return make_error(EINVAL, "parse", proc(pid, "stat"));
  out.comm = text.substr(open + 1, close - open - 1);
  std::istringstream in(text.substr(close + 2));
  std::vector<std::string> f{"", "", ""};  // 1-based field numbers: f[3] is the state
  std::string tok;
  while (in >> tok) f.push_back(tok);
  if (f.size() < 52) return make_error(EINVAL, "parse", proc(pid, "stat") + " (too few fields)");
  const std::string where = proc(pid, "stat");
  auto u = [&](int n, auto& field) -> Result<void> {
    WPCKPT_TRY_ASSIGN(field, parse_number<std::remove_reference_t<decltype(field)>>(
                                 f[static_cast<size_t>(n)], 10, where + " field " + std::to_string(n)));
    return ok();
  };
  WPCKPT_TRY(u(4, out.ppid));
  WPCKPT_TRY(u(5, out.pgid));
  WPCKPT_TRY(u(6, out.sid));
  state::MmFields& mm = out.mm;
  WPCKPT_TRY(u(26, mm.start_code));
  WPCKPT_TRY(u(27, mm.end_code));
  WPCKPT_TRY(u(28, mm.start_stack));
  WPCKPT_TRY(u(45, mm.start_data));
  WPCKPT_TRY(u(46, mm.end_data));
  WPCKPT_TRY(u(47, mm.start_brk));
  WPCKPT_TRY(u(48, mm.arg_start));
  WPCKPT_TRY(u(49, mm.arg_end));
  WPCKPT_TRY(u(50, mm.env_start));
  WPCKPT_TRY(u(51, mm.env_end));
  return ok();
}

// Whitespace-separated numbers of one /proc/PID/status line, all or an error.
template <typename T>
Result<std::vector<T>> numbers(const std::string& text, int base, const std::string& what) {
  std::istringstream in(text);
  std::vector<T> out;
  for (std::string tok; in >> tok;) {
    WPCKPT_TRY_ASSIGN(T v, parse_number<T>(tok, base, what));
    out.push_back(v);
  }
  return out;
}

// /proc/PID/status (`text`): umask and credentials.
Result<void> read_status(pid_t pid, const std::string& text, state::ProcessState& out) {
  const std::string where = proc(pid, "status");
  std::istringstream in(text);
  std::string line;
  state::Credentials& c = out.creds;
  auto ids = [&](const std::string& key, const std::string& value, std::array<uint32_t*, 4> fields) -> Result<void> {
    WPCKPT_TRY_ASSIGN(auto v, numbers<uint32_t>(value, 10, where + " " + key));
    if (v.size() != 4) return make_error(EINVAL, "parse", where + " " + key + " (not 4 ids)");
    for (size_t i = 0; i < 4; ++i) *fields[i] = v[i];
    return ok();
  };
  while (std::getline(in, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    std::string value = line.substr(colon + 1);
    const std::string what = where + " " + key;
    if (key == "Umask") {
      WPCKPT_TRY_ASSIGN(out.umask, parse_number<uint32_t>(value, 8, what));
    } else if (key == "Uid") {
      WPCKPT_TRY(ids(key, value, {&c.uid, &c.euid, &c.suid, &c.fsuid}));
    } else if (key == "Gid") {
      WPCKPT_TRY(ids(key, value, {&c.gid, &c.egid, &c.sgid, &c.fsgid}));
    } else if (key == "Groups") {
      WPCKPT_TRY_ASSIGN(c.groups, numbers<uint32_t>(value, 10, what));
    } else if (key == "CapInh") {
      WPCKPT_TRY_ASSIGN(c.cap_inheritable, parse_number<uint64_t>(value, 16, what));
    } else if (key == "CapPrm") {
      WPCKPT_TRY_ASSIGN(c.cap_permitted, parse_number<uint64_t>(value, 16, what));
    } else if (key == "CapEff") {
      WPCKPT_TRY_ASSIGN(c.cap_effective, parse_number<uint64_t>(value, 16, what));
    } else if (key == "CapBnd") {
      WPCKPT_TRY_ASSIGN(c.cap_bounding, parse_number<uint64_t>(value, 16, what));
    } else if (key == "CapAmb") {
      WPCKPT_TRY_ASSIGN(c.cap_ambient, parse_number<uint64_t>(value, 16, what));
    } else if (key == "NoNewPrivs") {
      WPCKPT_TRY_ASSIGN(int n, parse_number<int>(value, 10, what));
      c.no_new_privs = n != 0;
    }
  }
  return ok();
}

Result<void> read_files(pid_t pid, state::ProcessState& out) {
  WPCKPT_TRY_ASSIGN(std::string auxv, read_text(proc(pid, "auxv")));
  out.mm.auxv.resize(auxv.size() / 8);
  std::memcpy(out.mm.auxv.data(), auxv.data(), out.mm.auxv.size() * 8);
  WPCKPT_TRY_ASSIGN(out.mm.exe_path, read_link(proc(pid, "exe")));
  struct stat st {};
  if (::stat(proc(pid, "exe").c_str(), &st) != 0) return errno_error("stat", proc(pid, "exe"));
  out.mm.exe_dev = st.st_dev;
  out.mm.exe_inode = st.st_ino;
  WPCKPT_TRY_ASSIGN(out.cwd, read_link(proc(pid, "cwd")));
  WPCKPT_TRY_ASSIGN(out.root, read_link(proc(pid, "root")));
  return ok();
}

// What only the process itself can tell: timers, signal handlers, brk,
// securebits, personality and limits (prlimit on another process would need
// CAP_SYS_RESOURCE or matching ids; from inside it needs nothing). One batch
// for all but the timers.
Result<void> inject_queries(pid_t pid, ptrace::Injector& inj, state::ProcessState& out,
                            const std::atomic<bool>* cancel) {
  WPCKPT_TRY(capture_posix_timers(inj, pid, out));
  fault_point("injecting", cancel);
  if (cancel && cancel->load()) return interrupted_error(pid);
  using Call = ptrace::Injector::Call;
  std::vector<Call> calls;
  std::vector<int> signals;
  uint64_t at = inj.data();  // result buffers, in call order
  for (int sig = 1; sig <= 64; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    signals.push_back(sig);
    calls.push_back({SYS_rt_sigaction, {static_cast<uint64_t>(sig), 0, at, 8}});
    at += sizeof(uapi::KernelSigaction);
  }
  const size_t first_itimer = calls.size();
  for (int which : kItimerKinds) {
    calls.push_back({SYS_getitimer, {static_cast<uint64_t>(which), at}});
    at += sizeof(struct itimerval);
  }
  const uint64_t pdeath_at = at, rlimits_at = at + 8;
  const size_t first_rlimit = calls.size();
  for (int r = 0; r < kRlimitCount; ++r)
    calls.push_back({SYS_prlimit64, {0, static_cast<uint64_t>(r), 0, rlimits_at + 16 * static_cast<uint64_t>(r)}});
  const size_t more = calls.size();
  calls.push_back({SYS_brk, {0}});
  calls.push_back({SYS_prctl, {PR_GET_SECUREBITS}});
  calls.push_back({SYS_prctl, {PR_GET_DUMPABLE}});
  calls.push_back({SYS_prctl, {PR_GET_PDEATHSIG, pdeath_at}});
  calls.push_back({SYS_personality, {0xffffffff}});
  const size_t used = rlimits_at + 16 * kRlimitCount - inj.data();
  if (inj.data() + used > inj.batch_table()) return make_error(E2BIG, "injected queries", "result buffers");
  WPCKPT_TRY_ASSIGN(std::vector<long> rc, inj.batch(calls));
  std::vector<uint8_t> results(used);
  WPCKPT_TRY(inj.read(inj.data(), results.data(), results.size()));
  auto result_at = [&](uint64_t addr, void* dst, size_t len) { std::memcpy(dst, &results[addr - inj.data()], len); };

  for (size_t i = 0; i < signals.size(); ++i) {
    if (rc[i] != 0)
      return make_error(static_cast<int>(-rc[i]), "injected rt_sigaction", fmt::format("signal {}", signals[i]));
    uapi::KernelSigaction act{};
    result_at(calls[i].args[2], &act, sizeof act);
    out.sigactions.push_back({signals[i], act.handler, act.flags, act.restorer, act.mask});
  }
  for (size_t i = 0; i < std::size(kItimerKinds); ++i) {
    const Call& c = calls[first_itimer + i];
    long v = rc[first_itimer + i];
    if (v != 0) return make_error(static_cast<int>(-v), "injected getitimer", fmt::format("timer {}", kItimerKinds[i]));
    struct itimerval value {};
    result_at(c.args[1], &value, sizeof value);
    add_itimer(kItimerKinds[i], value, out);
  }
  for (int r = 0; r < kRlimitCount; ++r) {
    long v = rc[first_rlimit + static_cast<size_t>(r)];
    if (v != 0) return make_error(static_cast<int>(-v), "injected prlimit64", fmt::format("resource {}", r));
    uint64_t lim[2] = {};
    result_at(calls[first_rlimit + static_cast<size_t>(r)].args[3], lim, sizeof lim);
    out.rlimits.push_back({r, lim[0], lim[1]});
  }
  out.mm.brk = static_cast<uint64_t>(rc[more]);
  if (rc[more + 1] >= 0) out.creds.securebits = static_cast<uint32_t>(rc[more + 1]);
  if (rc[more + 2] >= 0) out.creds.dumpable = static_cast<int>(rc[more + 2]);
  if (rc[more + 3] != 0) return make_error(static_cast<int>(-rc[more + 3]), "injected prctl(PR_GET_PDEATHSIG)");
  result_at(pdeath_at, &out.pdeath_signal, sizeof out.pdeath_signal);
  if (rc[more + 4] < 0) return make_error(static_cast<int>(-rc[more + 4]), "injected personality");
  out.personality = static_cast<uint64_t>(rc[more + 4]);
  return ok();
}

Result<void> read_vdso(pid_t pid, const ptrace::Injector& inj, state::ProcessState& out) {
  if (!inj.vdso_image().empty()) {  // read by the injector already, in this freeze
    out.vdso_image = inj.vdso_image();
    return ok();
  }
  WPCKPT_TRY_ASSIGN(auto vmas, tracker::read_maps(pid));
  for (const auto& v : vmas) {
    if (v.name != "[vdso]") continue;
    std::ifstream mem(proc(pid, "mem"), std::ios::binary);
    mem.seekg(static_cast<std::streamoff>(v.start));
    out.vdso_image.resize(v.size());
    if (!mem.read(reinterpret_cast<char*>(out.vdso_image.data()), static_cast<std::streamsize>(v.size())))
      return make_error(EIO, "read [vdso]", fmt::format("process {}", pid));
  }
  return ok();
}

// The lines of a status file that carry credentials, in the kernel's order.
std::string credential_lines(const std::string& status) {
  static constexpr std::array<std::string_view, 9> kKeys = {"Uid:",    "Gid:",    "Groups:", "CapInh:",    "CapPrm:",
                                                            "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:"};
  std::istringstream in(status);
  std::string line, out;
  while (std::getline(in, line)) {
    for (std::string_view key : kKeys)
      if (line.compare(0, key.size(), key) == 0) out += line + "\n";
  }
  return out;
}

// Credentials are recorded once per process, the main thread's, and restore
// gives them to every thread: a thread that changed its own (a raw
// setresuid, setgroups or capset) would come back with the others'.
Result<void> check_thread_credentials(pid_t pid, const std::string& main_status) {
  const std::string want = credential_lines(main_status);
  const std::string tasks = proc(pid, "task");
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(tasks, ec)) {
    const std::string tid = entry.path().filename().string();
    if (tid == std::to_string(pid)) continue;
    WPCKPT_TRY_ASSIGN(std::string status, read_text(entry.path().string() + "/status"));
    if (credential_lines(status) != want) {
      return make_error(EOPNOTSUPP, "dump",
                        fmt::format("thread {} of process {} has other credentials than its main thread", tid, pid))
          .with_hint("wpckpt saves one set of credentials per process: dump it when its threads' uids, gids, "
                     "groups and capabilities agree (compare /proc/PID/task/*/status)");
    }
  }
  if (ec) return make_error(ec.value(), "list", tasks);
  return ok();
}

}  // namespace

Result<std::string> read_text(const std::string& path) { return read_text_file(path); }

Result<std::string> read_link(const std::string& path) {
  char buf[4096];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
  if (n < 0) return errno_error("readlink", path);
  return std::string(buf, static_cast<size_t>(n));
}

Result<void> capture_process(pid_t pid, ptrace::Injector& inj, state::ProcessState& out,
                             const std::atomic<bool>* cancel) {
  out.pid = pid;
  WPCKPT_TRY(read_stat(pid, out));
  WPCKPT_TRY_ASSIGN(std::string status, read_text(proc(pid, "status")));
  WPCKPT_TRY(read_status(pid, status, out));
  WPCKPT_TRY(check_thread_credentials(pid, status));
  WPCKPT_TRY(read_files(pid, out));
  WPCKPT_TRY(inject_queries(pid, inj, out, cancel));
  WPCKPT_TRY_ASSIGN(out.shared_pending, ptrace::peek_pending(inj.tid(), true));
  out.xcr0 = ptrace::xcr0();
  out.xsave_size = ptrace::xsave_size();
  return read_vdso(pid, inj, out);
}

}  // namespace wpckpt::dump
