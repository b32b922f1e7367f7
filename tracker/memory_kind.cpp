#include "tracker/memory_kind.hpp"

#include <string>

namespace wpckpt::tracker {
namespace {

constexpr std::string_view kDeleted = " (deleted)";

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// A path /proc shows for a file that open(2) can reach again. memfds, SysV
// segments and shared anonymous memory always show " (deleted)": their
// inodes live on internal mounts with no path.
bool reopenable_path(const Vma& v) {
  return v.inode != 0 && !v.name.empty() && v.name[0] == '/' && !ends_with(v.name, kDeleted);
}

struct Name {
  MemoryKind kind;
  const char* name;
};
constexpr Name kNames[] = {
    {MemoryKind::Anon, "anon"},   {MemoryKind::Heap, "heap"},         {MemoryKind::Stack, "stack"},
    {MemoryKind::File, "file"},   {MemoryKind::Shmem, "shmem"},       {MemoryKind::Vdso, "vdso"},
    {MemoryKind::Vvar, "vvar"},   {MemoryKind::VvarVclock, "vvar_vclock"}, {MemoryKind::Vsyscall, "vsyscall"},
};

}  // namespace

MemoryKind classify_memory(const Vma& v) {
  if (v.name == "[vdso]") return MemoryKind::Vdso;
  if (v.name == "[vvar]") return MemoryKind::Vvar;
  if (v.name == "[vvar_vclock]") return MemoryKind::VvarVclock;
  if (v.name == "[vsyscall]") return MemoryKind::Vsyscall;
  if (v.name == "[heap]") return MemoryKind::Heap;
  if (v.name == "[stack]") return MemoryKind::Stack;
  // A private mapping of /dev/zero is plain anonymous memory (the kernel
  // makes it so); only the shared one is shmem ("/dev/zero (deleted)").
  if (!v.shared && v.name == "/dev/zero") return MemoryKind::Anon;
  if (reopenable_path(v)) return MemoryKind::File;
  // Shared memory of any other origin has a shmem inode; a private mapping
  // with a "/..." name is a copy-on-write view of a file without a path.
  if (v.shared || (v.inode != 0 && !v.name.empty() && v.name[0] == '/')) return MemoryKind::Shmem;
  return MemoryKind::Anon;
}

const char* memory_kind_name(MemoryKind kind) {
  for (const Name& n : kNames)
    if (n.kind == kind) return n.name;
  return "?";
}

std::optional<MemoryKind> parse_memory_kind(std::string_view name) {
  for (const Name& n : kNames)
    if (name == n.name) return n.kind;
  return std::nullopt;
}

}  // namespace wpckpt::tracker
