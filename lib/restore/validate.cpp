#include "lib/restore/validate.hpp"


#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <cstring>
#include <fstream>
#include <sstream>

#include "lib/base/text_file.hpp"
#include "lib/fds/recorded_file.hpp"
#include "lib/base/uapi/process.hpp"
#include "lib/probe/capabilities.hpp"
#include "lib/ptrace/regs.hpp"
#include "lib/state/json_fields.hpp"
#include "tracker/proc_maps.hpp"

namespace wpckpt::restore {

uint64_t cpu_xcr0() {
  uint32_t eax = 0, edx = 0;
  asm volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

Result<std::vector<uint8_t>> own_vdso_image() {
  WPCKPT_TRY_ASSIGN(auto vmas, tracker::read_maps(getpid()));
  for (const auto& v : vmas) {
    if (v.name != "[vdso]") continue;
    const auto* p = reinterpret_cast<const uint8_t*>(v.start);
    return std::vector<uint8_t>(p, p + v.size());
  }
  return make_error(ENOENT, "find [vdso]", "/proc/self/maps");
}

Result<void> check_cpu_and_vdso(const state::ProcessState& state) {
  const char* const cpu_hint = "restore on a CPU with at least the features of the one the dump was made on";
  uint64_t have = cpu_xcr0();
  if ((state.xcr0 & ~have) != 0) {
    char buf[128];
    snprintf(buf, sizeof buf, "image uses XSAVE features 0x%" PRIx64 ", this CPU enables 0x%" PRIx64, state.xcr0,
             have);
    return make_error(0, "check CPU features", buf).with_hint(cpu_hint);
  }
  // Each thread's XSAVE area is the size the image records, which must fit
  // this CPU's (a larger one would lose state when restore writes it back).
  for (size_t i = 0; i < state.threads.size(); ++i) {
    const auto& xsave = state.threads[i].xsave;
    if (xsave.empty() || xsave.size() == state.xsave_size) continue;
    return state::field_error("threads[" + std::to_string(i) + "].xsave",
                              "is " + std::to_string(xsave.size()) + " bytes, xsave_size says " +
                                  std::to_string(state.xsave_size));
  }
  if (state.xsave_size > ptrace::xsave_size()) {
    return make_error(0, "check CPU features",
                      "the image's XSAVE area is " + std::to_string(state.xsave_size) + " bytes, this CPU's " +
                          std::to_string(ptrace::xsave_size()))
        .with_hint(cpu_hint);
  }
  if (state.vdso_image.empty()) return ok();  // an image without a vdso (never seen on x86_64)
  WPCKPT_TRY_ASSIGN(auto mine, own_vdso_image());
  if (mine != state.vdso_image) {
    return make_error(0, "check vdso",
                      "the image's [vdso] (" + std::to_string(state.vdso_image.size()) +
                          " bytes) differs from this kernel's (" + std::to_string(mine.size()) + " bytes)")
        .with_hint("the dump was made on another kernel build; restore it on the kernel it was dumped on");
  }
  return ok();
}

namespace {

std::string comm_of(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string comm;
  std::getline(in, comm);
  return comm;
}

bool id_in_use(int id) {
  struct stat st{};
  return ::stat(("/proc/" + std::to_string(id)).c_str(), &st) == 0;
}

// Dead or dying: 'Z' or 'X' (its id held until its parent reaps it), or
// exiting (PF_EXITING in the flags, field 9: its memory being torn down).
bool id_held_by_the_dead(int id) {
  std::string all = read_text_file("/proc/" + std::to_string(id) + "/stat").value_or("");
  auto paren = all.rfind(')');
  if (paren == std::string::npos || paren + 2 >= all.size()) return false;
  if (all[paren + 2] == 'Z' || all[paren + 2] == 'X') return true;
  std::istringstream rest(all.substr(paren + 2));
  std::string field;
  for (int i = 3; i <= 9 && rest >> field; ++i) {
  }
  constexpr unsigned long kPfExiting = 0x4;
  return !field.empty() && (std::strtoul(field.c_str(), nullptr, 10) & kPfExiting) != 0;
}

// A dump kills its process after the commit; until the process's parent
// reaps it, the pid is a zombie's. A restore that follows at once (a script,
// a migration between two namespaces of one host) waits for that. The
// children of a dumped tree die with their parents and are reaped by PID 1,
// which a container's init may do late (1.5-1.8 s measured here): up to 10 s.
bool free_soon(int id) {
  constexpr int kTries = 2000;  // 5 ms apart: 10 s
  for (int i = 0; i < kTries && id_in_use(id); ++i) {
    // Gone between the two looks (reaped meanwhile): free, not someone else's.
    if (!id_held_by_the_dead(id) && id_in_use(id)) return false;
    ::usleep(5000);
  }
  return !id_in_use(id);
}

}  // namespace

Result<void> check_id_free(int id, bool is_pid) {
  if (!id_in_use(id) || free_soon(id)) return ok();
  std::string what = is_pid ? "pid " : "tid ";
  std::string comm = comm_of(id);
  return make_error(EEXIST, "restore " + what + std::to_string(id),
                    "(in use by " + (comm.empty() ? std::string("another process") : "'" + comm + "'") + ")")
      .with_hint(id_held_by_the_dead(id) ? "it is a zombie: its parent (see PPid in /proc/" + std::to_string(id) +
                                               "/status) must reap it first; restore needs the same ids"
                                         : "the process (or a thread) using that id must exit first; restore needs the same ids");
}

Result<void> check_ids_free(const state::ProcessState& state) {
  WPCKPT_TRY(check_id_free(state.pid, true));
  for (const auto& t : state.threads)
    if (t.tid != state.pid) WPCKPT_TRY(check_id_free(t.tid, false));
  return ok();
}

Result<void> check_capabilities() {
  if (probe::has_effective_capability(uapi::kCapCheckpointRestore) || probe::has_effective_capability(uapi::kCapSysAdmin)) return ok();
  return make_error(EPERM, "check capabilities", "CAP_CHECKPOINT_RESTORE and CAP_SYS_ADMIN are both missing")
      .with_hint("restore needs one of them (clone3 with set_tid, PR_SET_MM exe): run as root, or grant "
                 "CAP_CHECKPOINT_RESTORE, e.g. setcap cap_checkpoint_restore,cap_sys_ptrace+ep wpckpt");
}

namespace {

Result<void> check_path(const state::FileIdentity& file, const std::string& what) {
  if (file.deleted) {
    return make_error(ENOENT, "reopen " + what, file.path + " (deleted before the dump)")
        .with_hint("a process using a deleted file cannot be restored yet");
  }
  struct stat st{};
  if (::stat(file.path.c_str(), &st) != 0) {
    return errno_error("reopen " + what, file.path).with_hint("the file must exist where it was at dump time");
  }
  return fds::check_file_identity(file, st, what);
}

}  // namespace

Result<void> validate(const state::ProcessState& state) {
  if (state.threads.empty() || !state.threads.front().is_main) {
    return make_error(EINVAL, "read process state", "no main thread").with_hint("the image is not a complete dump");
  }
  WPCKPT_TRY(check_capabilities());
  WPCKPT_TRY(check_cpu_and_vdso(state));
  WPCKPT_TRY(check_ids_free(state));
  for (const auto& m : state.mappings) {
    if (tracker::maps_file_again(m.kind) && m.file) WPCKPT_TRY(check_path(*m.file, "mapped file"));
  }
  if (!state.mm.exe_path.empty()) {
    state::FileIdentity exe{state.mm.exe_path, state.mm.exe_dev, state.mm.exe_inode, 0, 0, false};
    WPCKPT_TRY(check_path(exe, "executable"));
  }
  return ok();
}

}  // namespace wpckpt::restore
