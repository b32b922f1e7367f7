#include "lib/state/process_state.hpp"

#include "lib/state/json_fields.hpp"
#include "lib/state/json_text.hpp"

namespace wpckpt::state {

using nlohmann::json;

std::string to_hex(std::span<const uint8_t> bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 0xf]);
  }
  return out;
}

bool from_hex(const std::string& text, std::vector<uint8_t>& out) {
  if (text.size() % 2) return false;
  out.clear();
  out.reserve(text.size() / 2);
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (size_t i = 0; i < text.size(); i += 2) {
    int hi = nibble(text[i]), lo = nibble(text[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<uint8_t>(hi << 4 | lo));
  }
  return true;
}

Error field_error(const std::string& where, const std::string& what) {
  return make_error(0, "read process state:", "field '" + where + "' " + what)
      .with_hint("process.json is damaged or was not written by wpckpt; restore from another image");
}

// Kinds travel by name; an unknown name is refused here, not deep in restore.
Result<void> read_json(const json& j, FdKind& out, const std::string& where) {
  std::string name;
  WPCKPT_TRY(read_json(j, name, where));
  auto kind = fd_kind_from_name(name);
  if (!kind) return field_error(where, "is '" + name + "', not a kind of descriptor this wpckpt knows");
  out = *kind;
  return ok();
}
json write_json(FdKind kind) { return fd_kind_name(kind); }

}  // namespace wpckpt::state

// Mapping kinds travel by name; found by argument-dependent lookup from the
// readers in json_fields.hpp, hence in the enum's namespace.
namespace wpckpt::tracker {
Result<void> read_json(const nlohmann::json& j, MemoryKind& out, const std::string& where) {
  std::string name;
  WPCKPT_TRY(state::read_json(j, name, where));
  auto kind = parse_memory_kind(name);
  if (!kind) return state::field_error(where, "is '" + name + "', not a kind of mapping this wpckpt knows");
  out = *kind;
  return ok();
}
nlohmann::json write_json(MemoryKind kind) { return memory_kind_name(kind); }
}  // namespace wpckpt::tracker

namespace wpckpt::state {

// Every field of process.json, once: the writer and the checked reader both
// walk these lists (json_fields.hpp). Registers are all required; the rest
// has defaults.
template <typename V>
void fields(V& v, Registers& r) {
  v.req("r15", r.r15), v.req("r14", r.r14), v.req("r13", r.r13), v.req("r12", r.r12), v.req("rbp", r.rbp);
  v.req("rbx", r.rbx), v.req("r11", r.r11), v.req("r10", r.r10), v.req("r9", r.r9), v.req("r8", r.r8);
  v.req("rax", r.rax), v.req("rcx", r.rcx), v.req("rdx", r.rdx), v.req("rsi", r.rsi), v.req("rdi", r.rdi);
  v.req("orig_rax", r.orig_rax), v.req("rip", r.rip), v.req("cs", r.cs), v.req("eflags", r.eflags);
  v.req("rsp", r.rsp), v.req("ss", r.ss), v.req("fs_base", r.fs_base), v.req("gs_base", r.gs_base);
  v.req("ds", r.ds), v.req("es", r.es), v.req("fs", r.fs), v.req("gs", r.gs);
}
template <typename V>
void fields(V& v, RseqState& r) {
  v.opt("abi_pointer", r.abi_pointer), v.opt("abi_size", r.abi_size), v.opt("signature", r.signature);
}
template <typename V>
void fields(V& v, AltStack& a) {
  v.opt("sp", a.sp), v.opt("flags", a.flags), v.opt("size", a.size);
}
template <typename V>
void fields(V& v, ThreadState& t) {
  v.opt("tid", t.tid), v.opt("is_main", t.is_main), v.req("regs", t.regs), v.opt("xsave", t.xsave);
  v.opt("sigmask", t.sigmask), v.opt("pending", t.pending), v.opt("rseq", t.rseq);
  v.opt("clear_child_tid", t.clear_child_tid), v.opt("altstack", t.altstack), v.opt("name", t.name);
}
template <typename V>
void fields(V& v, SignalAction& a) {
  v.opt("signo", a.signo), v.opt("handler", a.handler), v.opt("flags", a.flags), v.opt("restorer", a.restorer);
  v.opt("mask", a.mask);
}
template <typename V>
void fields(V& v, MmFields& m) {
  v.opt("start_code", m.start_code), v.opt("end_code", m.end_code), v.opt("start_data", m.start_data);
  v.opt("end_data", m.end_data), v.opt("start_brk", m.start_brk), v.opt("brk", m.brk);
  v.opt("start_stack", m.start_stack), v.opt("arg_start", m.arg_start), v.opt("arg_end", m.arg_end);
  v.opt("env_start", m.env_start), v.opt("env_end", m.env_end), v.opt("auxv", m.auxv);
  v.opt("exe_path", m.exe_path), v.opt("exe_dev", m.exe_dev), v.opt("exe_inode", m.exe_inode);
}
template <typename V>
void fields(V& v, Credentials& c) {
  v.opt("uid", c.uid), v.opt("euid", c.euid), v.opt("suid", c.suid), v.opt("fsuid", c.fsuid);
  v.opt("gid", c.gid), v.opt("egid", c.egid), v.opt("sgid", c.sgid), v.opt("fsgid", c.fsgid);
  v.opt("groups", c.groups), v.opt("cap_effective", c.cap_effective), v.opt("cap_permitted", c.cap_permitted);
  v.opt("cap_inheritable", c.cap_inheritable), v.opt("cap_bounding", c.cap_bounding);
  v.opt("cap_ambient", c.cap_ambient), v.opt("securebits", c.securebits), v.opt("no_new_privs", c.no_new_privs);
  v.opt("dumpable", c.dumpable);
}
template <typename V>
void fields(V& v, Rlimit& r) {
  v.opt("resource", r.resource), v.opt("cur", r.cur), v.opt("max", r.max);
}
template <typename V>
void fields(V& v, FileIdentity& f) {
  v.opt("path", f.path), v.opt("dev", f.dev), v.opt("inode", f.inode), v.opt("size", f.size);
  v.opt("mtime_ns", f.mtime_ns), v.opt("deleted", f.deleted);
}
template <typename V>
void fields(V& v, Mapping& m) {
  v.opt("start", m.start), v.opt("end", m.end), v.opt("prot", m.prot), v.opt("shared", m.shared);
  v.opt("kind", m.kind), v.opt("name", m.name), v.opt("file_offset", m.file_offset), v.opt("vm_flags", m.vm_flags);
  v.opt("guards", m.guards), v.opt("file", m.file);
}
template <typename V>
void fields(V& v, FdState& f) {
  v.opt("fd", f.fd), v.opt("cloexec", f.cloexec), v.opt("kind", f.kind), v.opt("flags", f.flags);
  v.opt("pos", f.pos), v.opt("object_id", f.object_id), v.opt("details", f.details), v.opt("file", f.file);
  v.opt("shared_id", f.shared_id);
}
template <typename V>
void fields(V& v, IntervalTimer& t) {
  v.opt("which", t.which), v.opt("value_sec", t.value_sec), v.opt("value_usec", t.value_usec);
  v.opt("interval_sec", t.interval_sec), v.opt("interval_usec", t.interval_usec);
}
template <typename V>
void fields(V& v, PosixTimer& t) {
  v.opt("id", t.id), v.opt("clock", t.clock), v.opt("signo", t.signo), v.opt("sigev_value", t.sigev_value);
  v.opt("notify", t.notify), v.opt("notify_tid", t.notify_tid), v.opt("value_sec", t.value_sec);
  v.opt("value_nsec", t.value_nsec), v.opt("interval_sec", t.interval_sec), v.opt("interval_nsec", t.interval_nsec);
  v.opt("overrun", t.overrun);
}
template <typename V>
void fields(V& v, SysvShm& m) {
  v.opt("id", m.id), v.opt("key", m.key), v.opt("size", m.size), v.opt("mode", m.mode), v.opt("uid", m.uid);
  v.opt("gid", m.gid), v.opt("removed", m.removed);
}
template <typename V>
void fields(V& v, ProcessState& s) {
  v.opt("state_version", s.state_version), v.opt("pid", s.pid), v.opt("ppid", s.ppid), v.opt("pgid", s.pgid);
  v.opt("sid", s.sid), v.opt("comm", s.comm), v.opt("threads", s.threads), v.opt("sigactions", s.sigactions);
  v.opt("shared_pending", s.shared_pending), v.opt("mm", s.mm), v.opt("cwd", s.cwd), v.opt("root", s.root);
  v.opt("umask", s.umask), v.opt("rlimits", s.rlimits), v.opt("creds", s.creds);
  v.opt("personality", s.personality), v.opt("pdeath_signal", s.pdeath_signal), v.opt("xcr0", s.xcr0);
  v.opt("xsave_size", s.xsave_size);
  v.opt("vdso_image", s.vdso_image), v.opt("mappings", s.mappings), v.opt("fds", s.fds);
  v.opt("tracking", s.tracking), v.opt("itimers", s.itimers), v.opt("posix_timers", s.posix_timers);
  v.opt("sysv_shm", s.sysv_shm);
}

json to_json(const ProcessState& state) { return write_json(state); }

Result<ProcessState> from_json(const json& doc) {
  ProcessState s;
  // The version first: a newer writer may have changed what the other fields mean.
  if (auto it = doc.find("state_version"); doc.is_object() && it != doc.end())
    WPCKPT_TRY(read_json(*it, s.state_version, "state_version"));
  if (s.state_version == 0 || s.state_version > kStateVersion) {
    return make_error(0, "read process state", std::string("state_version ") + std::to_string(s.state_version))
        .with_hint("this image was written by a newer wpckpt; restore it with that version");
  }
  WPCKPT_TRY(read_json(doc, s, ""));
  return s;
}

Result<ProcessState> parse(std::span<const std::byte> bytes) {
  json doc = json::parse(reinterpret_cast<const char*>(bytes.data()),
                         reinterpret_cast<const char*>(bytes.data()) + bytes.size(), nullptr, false);
  if (doc.is_discarded()) return make_error(EINVAL, "parse process state", "not valid JSON");
  return from_json(doc);
}

Result<std::string> serialize(const ProcessState& state) {
  // dump() throws on a string that is not UTF-8 (a process name or a path may
  // be any bytes); such a process cannot be described in process.json yet.
  try {
    std::string text;
    text.reserve(16384 + 256 * (state.mappings.size() + state.fds.size()));
    append_json(text, state);
    return text;
  } catch (const json::exception& e) {
    return make_error(EILSEQ, "describe process", std::to_string(state.pid) + " (" + e.what() + ")")
        .with_hint("a name or path of the process is not valid UTF-8, which process.json cannot hold yet: rename it");
  }
}

}  // namespace wpckpt::state
