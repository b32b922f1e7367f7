#include "lib/state/process_state.hpp"

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

// Binary blobs travel as hex strings inside the JSON document.

}  // namespace wpckpt::state

namespace nlohmann {
template <>
struct adl_serializer<std::vector<uint8_t>> {
  static void to_json(json& j, const std::vector<uint8_t>& v) { j = wpckpt::state::to_hex(v); }
  static void from_json(const json& j, std::vector<uint8_t>& v) {
    if (!wpckpt::state::from_hex(j.get<std::string>(), v)) throw json::type_error::create(302, "bad hex blob", &j);
  }
};
}  // namespace nlohmann

namespace wpckpt::state {

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Registers, r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx,
                                                rdx, rsi, rdi, orig_rax, rip, cs, eflags, rsp, ss, fs_base, gs_base,
                                                ds, es, fs, gs)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(RseqState, abi_pointer, abi_size, signature)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AltStack, sp, flags, size)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ThreadState, tid, is_main, regs, xsave, sigmask, pending, rseq,
                                                clear_child_tid, altstack, rseq_ip_fixed)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SignalAction, signo, handler, flags, restorer, mask)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(MmFields, start_code, end_code, start_data, end_data, start_brk, brk,
                                                start_stack, arg_start, arg_end, env_start, env_end, auxv, exe_path,
                                                exe_dev, exe_inode)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Credentials, uid, euid, suid, fsuid, gid, egid, sgid, fsgid, groups,
                                                cap_effective, cap_permitted, cap_inheritable, cap_bounding,
                                                cap_ambient, securebits, no_new_privs, dumpable)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Rlimit, resource, cur, max)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FileIdentity, path, dev, inode, size, mtime_ns, deleted)

void to_json(json& j, const Mapping& m) {
  j = json{{"start", m.start}, {"end", m.end}, {"prot", m.prot}, {"shared", m.shared}, {"kind", tracker::memory_kind_name(m.kind)},
           {"name", m.name}, {"file_offset", m.file_offset}, {"vm_flags", m.vm_flags}, {"guards", m.guards},
           {"contents_in_image", m.contents_in_image}};
  if (m.file) j["file"] = *m.file;
}
void from_json(const json& j, Mapping& m) {
  Mapping d;
  m.start = j.value("start", d.start);
  m.end = j.value("end", d.end);
  m.prot = j.value("prot", d.prot);
  m.shared = j.value("shared", d.shared);
  // An unknown kind is refused (from_json turns the exception into an Error).
  auto kind = tracker::parse_memory_kind(j.value("kind", std::string(tracker::memory_kind_name(d.kind))));
  if (!kind) throw json::type_error::create(302, "unknown mapping kind", &j);
  m.kind = *kind;
  m.name = j.value("name", d.name);
  m.file_offset = j.value("file_offset", d.file_offset);
  m.vm_flags = j.value("vm_flags", d.vm_flags);
  m.guards = j.value("guards", d.guards);
  m.contents_in_image = j.value("contents_in_image", d.contents_in_image);
  if (j.contains("file")) m.file = j.at("file").get<FileIdentity>();
}

void to_json(json& j, const FdState& f) {
  j = json{{"fd", f.fd},     {"cloexec", f.cloexec},     {"kind", f.kind},      {"flags", f.flags},
           {"pos", f.pos},   {"object_id", f.object_id}, {"details", f.details}};
  if (f.file) j["file"] = *f.file;
}
void from_json(const json& j, FdState& f) {
  FdState d;
  f.fd = j.value("fd", d.fd);
  f.cloexec = j.value("cloexec", d.cloexec);
  f.kind = j.value("kind", d.kind);
  f.flags = j.value("flags", d.flags);
  f.pos = j.value("pos", d.pos);
  f.object_id = j.value("object_id", d.object_id);
  f.details = j.value("details", d.details);
  if (j.contains("file")) f.file = j.at("file").get<FileIdentity>();
}

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ProcessState, state_version, pid, ppid, pgid, sid, comm, threads,
                                                sigactions, shared_pending, mm, cwd, root, umask, rlimits, creds,
                                                personality, xcr0, xsave_size, vdso_image, mappings, fds, tracking)

json to_json(const ProcessState& state) {
  json j;
  to_json(j, state);
  return j;
}

Result<ProcessState> from_json(const json& doc) {
  try {
    ProcessState s = doc.get<ProcessState>();
    if (s.state_version == 0 || s.state_version > kStateVersion) {
      return make_error(0, "read process state", std::string("state_version ") + std::to_string(s.state_version))
          .with_hint("this image was written by a newer wpckpt; restore it with that version");
    }
    return s;
  } catch (const json::exception& e) {
    return make_error(EINVAL, "parse process state", e.what());
  }
}

Result<ProcessState> parse(std::span<const std::byte> bytes) {
  json doc = json::parse(reinterpret_cast<const char*>(bytes.data()),
                         reinterpret_cast<const char*>(bytes.data()) + bytes.size(), nullptr, false);
  if (doc.is_discarded()) return make_error(EINVAL, "parse process state", "not valid JSON");
  return from_json(doc);
}

std::string serialize(const ProcessState& state) { return to_json(state).dump(); }

}  // namespace wpckpt::state
