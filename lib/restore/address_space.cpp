#include "lib/restore/address_space.hpp"

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "lib/base/uapi/memory.hpp"
#include "lib/base/uapi/process.hpp"
#include "lib/ptrace/call_batch.hpp"
#include "lib/restore/sysv_shm.hpp"
#include "tracker/memory_kind.hpp"
#include "tracker/proc_maps.hpp"

namespace wpckpt::restore {

namespace {


using tracker::MemoryKind;


std::string hex_range(uint64_t a, uint64_t b) {
  char buf[64];
  snprintf(buf, sizeof buf, "0x%llx-0x%llx", static_cast<unsigned long long>(a), static_cast<unsigned long long>(b));
  return buf;
}

}  // namespace

uint64_t pick_free_area(std::vector<Range> busy, uint64_t len) {
  std::sort(busy.begin(), busy.end());
  uint64_t candidate = 0x10000000;  // above the usual non-PIE executables, below mmap_base
  for (const auto& [s, e] : busy) {
    if (e <= candidate) continue;
    if (candidate + len + uapi::kPageSize <= s) return candidate;
    candidate = e + uapi::kPageSize;  // keep a page of distance from anything
  }
  return candidate;
}

Result<uint64_t> pick_scratch_address(pid_t pid, const state::ProcessState& state) {
  std::vector<Range> busy;
  for (const auto& m : state.mappings) busy.emplace_back(m.start, m.end);
  WPCKPT_TRY_ASSIGN(auto vmas, tracker::read_maps(pid));
  for (const auto& v : vmas) busy.emplace_back(v.start, v.end);
  return pick_free_area(std::move(busy), ptrace::Injector::kScratchSize);
}

std::vector<state::Mapping> regular_mappings(const state::ProcessState& state) {
  std::vector<state::Mapping> out;
  out.reserve(state.mappings.size());  // no copies of copies when it grows: 32,000 areas are common enough
  for (const auto& m : state.mappings)
    if (!tracker::is_kernel_provided(m.kind)) out.push_back(m);
  return out;
}

Result<uint64_t> vdso_syscall_site(const state::ProcessState& state) {
  for (const auto& m : state.mappings) {
    if (m.kind != MemoryKind::Vdso) continue;
    const auto& img = state.vdso_image;
    for (size_t i = 0; i + 1 < img.size(); ++i)
      if (img[i] == 0x0f && img[i + 1] == 0x05) return m.start + i;
  }
  return make_error(ENOENT, "find a syscall instruction", "in the recorded [vdso]");
}

namespace {

// Moves the child's [vvar]/[vvar_vclock]/[vdso] so that they sit where the
// recorded ones were, keeping their relative layout (the vdso code reads the
// vvar pages at fixed offsets from itself).
Result<void> move_vdso_group(ptrace::Injector& inj, const state::ProcessState& state,
                             const std::vector<tracker::Vma>& now) {
  struct Piece {
    uint64_t from, to, len;
    std::string name;
  };
  std::vector<Piece> pieces;
  for (const auto& m : state.mappings) {
    if (!tracker::is_vdso_group(m.kind)) continue;
    std::string name = std::string("[") + tracker::memory_kind_name(m.kind) + "]";
    auto it = std::find_if(now.begin(), now.end(), [&](const tracker::Vma& v) { return v.name == name; });
    if (it == now.end() || it->size() != m.end - m.start) {
      return make_error(0, "move " + name, "this kernel has no " + name + " of " + std::to_string(m.end - m.start) + " bytes")
          .with_hint("restore on the kernel the dump was made on");
    }
    pieces.push_back({it->start, m.start, m.end - m.start, name});
  }
  if (pieces.empty()) return ok();
  for (const auto& v : now) {
    if (!tracker::is_vdso_group(tracker::classify_memory(v))) continue;
    bool recorded = std::any_of(pieces.begin(), pieces.end(), [&](const Piece& p) { return p.name == v.name; });
    if (!recorded) {
      return make_error(0, "move vdso", "this kernel has " + v.name + ", the image does not")
          .with_hint("restore on the kernel the dump was made on");
    }
  }
  if (std::all_of(pieces.begin(), pieces.end(), [](const Piece& p) { return p.from == p.to; })) return ok();

  uint64_t from_lo = UINT64_MAX, from_hi = 0, to_lo = UINT64_MAX, to_hi = 0;
  for (const auto& p : pieces) {
    from_lo = std::min(from_lo, p.from);
    from_hi = std::max(from_hi, p.from + p.len);
    to_lo = std::min(to_lo, p.to);
    to_hi = std::max(to_hi, p.to + p.len);
  }
  auto move_all = [&](auto target_of) -> Result<void> {
    for (auto& p : pieces) {
      uint64_t dst = target_of(p);
      WPCKPT_TRY(inj.checked_syscall("mremap", p.name + " to " + hex_range(dst, dst + p.len), SYS_mremap, p.from, p.len, p.len,
                      MREMAP_MAYMOVE | MREMAP_FIXED, dst));
      p.from = dst;
    }
    return ok();
  };
  bool overlap = from_lo < to_hi && to_lo < from_hi;
  if (overlap) {
    // Through a free area first, so that no piece lands on another one.
    std::vector<Range> busy{{from_lo, from_hi}, {to_lo, to_hi}, {inj.scratch(), inj.scratch() + ptrace::Injector::kScratchSize}};
    for (const auto& m : state.mappings) busy.emplace_back(m.start, m.end);
    uint64_t temp = pick_free_area(busy, to_hi - to_lo);
    WPCKPT_TRY(move_all([&](const Piece& p) { return temp + (p.to - to_lo); }));
  }
  return move_all([](const Piece& p) { return p.to; });
}

int mmap_flags(const state::Mapping& m, bool anonymous) {
  int flags = MAP_FIXED | (m.shared ? MAP_SHARED : MAP_PRIVATE);
  if (anonymous) flags |= MAP_ANONYMOUS;
  if (m.has_vm_flag("gd")) flags |= MAP_GROWSDOWN;
  if (m.has_vm_flag("nr")) flags |= MAP_NORESERVE;
  return flags;
}

// Shared memory the image fills but the process maps read-only: the fill
// cannot write it (the kernel refuses a forced write to a shared mapping),
// so it is mapped writable and finish_mm() gives it its protection back.
bool widened_for_fill(const state::Mapping& m) {
  return m.shared && m.kind == MemoryKind::Shmem && !(m.prot & PROT_WRITE) &&
         (m.has_vm_flag("mw") || is_sysv_mapping(m));
}

// A SysV segment (made by SysvSegments) is attached whole at its first
// area (offset 0; the dump refused partial attachments); the areas after it
// (an attachment split by mprotect) get their protection only. Attached
// read-write for the fill, like widened shared memory.
Result<void> attach_sysv(ptrace::Injector& inj, const state::Mapping& m, const std::string& ctx, uint32_t prot) {
  if (m.file_offset == 0) {
    WPCKPT_TRY_ASSIGN(long got, inj.checked_syscall("shmat", ctx, SYS_shmat, m.file->inode, m.start,
                                                    static_cast<uint64_t>(SHM_REMAP)));
    if (static_cast<uint64_t>(got) != m.start) return make_error(EFAULT, "shmat", ctx + ": placed elsewhere");
  }
  WPCKPT_TRY(inj.checked_syscall("mprotect", ctx, SYS_mprotect, m.start, m.end - m.start, prot));
  return ok();
}

// Queues the calls that map `m` (a System V segment is attached at once,
// after what is queued).
Result<void> map_one(ptrace::Injector& inj, ptrace::CallBatch& calls, const state::Mapping& m, const MappingFiles& files) {
  std::string ctx = hex_range(m.start, m.end) + (m.name.empty() ? "" : " " + m.name);
  int fd = -1;
  bool anonymous = true;
  if (m.file && tracker::maps_file_again(m.kind)) {
    auto it = files.by_path.find(m.file->path);
    if (it != files.by_path.end()) {
      fd = it->second;
      anonymous = false;
    } else {
      return make_error(ENOENT, "map", ctx + ": the file was not opened").with_hint("this is a wpckpt bug");
    }
  } else if (m.file && m.shared && m.kind == MemoryKind::Shmem) {
    // A memfd the process holds open: the descriptor's file (made before the
    // mappings, with the same contents), not a second shared area.
    auto it = files.memfd_by_inode.find({m.file->dev, m.file->inode});
    if (it != files.memfd_by_inode.end()) {
      fd = it->second;
      anonymous = false;
    }
  }
  uint64_t offset = anonymous ? 0 : m.file_offset;
  const uint32_t prot = m.prot | (widened_for_fill(m) ? PROT_WRITE : 0);
  if (is_sysv_mapping(m)) {
    WPCKPT_TRY(calls.flush());
    WPCKPT_TRY(attach_sysv(inj, m, ctx, prot));
  } else {
    WPCKPT_TRY(calls.add("mmap", ctx, SYS_mmap,
                         {m.start, m.end - m.start, prot, static_cast<uint64_t>(mmap_flags(m, anonymous)),
                          static_cast<uint64_t>(fd), offset},
                         static_cast<long>(m.start)));
  }
  struct {
    const char* flag;
    int advice;
  } advices[] = {{"hg", MADV_HUGEPAGE}, {"nh", MADV_NOHUGEPAGE}, {"dd", MADV_DONTDUMP},
                 {"dc", MADV_DONTFORK}, {"wf", MADV_WIPEONFORK}};
  for (const auto& a : advices) {
    if (!m.has_vm_flag(a.flag)) continue;
    WPCKPT_TRY(calls.add("madvise", ctx, SYS_madvise, {m.start, m.end - m.start, static_cast<uint64_t>(a.advice), 0, 0, 0}));
  }
  return ok();
}

// Shared memory without an open descriptor that is mapped more than once
// at overlapping offsets (a JIT's double mapping of one memfd, closed since)
// must stay one object, or a write through one address would not show
// through the other: a memfd made inside the process per such file, sized
// to its mappings; map_one maps them from it (files.memfd_by_inode). The
// returned descriptors are closed once everything is mapped.
Result<std::vector<int>> make_aliased_shmem(ptrace::Injector& inj, const std::vector<state::Mapping>& mappings,
                                            MappingFiles& files) {
  std::map<std::pair<uint64_t, uint64_t>, std::vector<const state::Mapping*>> groups;
  for (const auto& m : mappings)
    if (m.file && m.shared && m.kind == MemoryKind::Shmem && !is_sysv_mapping(m) &&
        !files.memfd_by_inode.count({m.file->dev, m.file->inode}))
      groups[{m.file->dev, m.file->inode}].push_back(&m);
  std::vector<int> made;
  for (const auto& [key, group] : groups) {
    bool aliased = false;
    uint64_t size = 0;
    for (size_t i = 0; i < group.size(); ++i) {
      const uint64_t a = group[i]->file_offset, a_end = a + (group[i]->end - group[i]->start);
      size = std::max(size, a_end);
      for (size_t j = i + 1; j < group.size(); ++j) {
        const uint64_t b = group[j]->file_offset, b_end = b + (group[j]->end - group[j]->start);
        aliased = aliased || (a < b_end && b < a_end);
      }
    }
    if (!aliased) continue;
    const std::string ctx = "shared memory mapped twice (" + group.front()->name + ")";
    // The memfd's own name where it had one, as /proc/PID/maps shows it.
    std::string name = group.front()->name, prefix = "/memfd:", suffix = " (deleted)";
    name = name.rfind(prefix, 0) == 0 && name.size() >= prefix.size() + suffix.size() &&
                   name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0
               ? name.substr(prefix.size(), std::min<size_t>(name.size() - prefix.size() - suffix.size(), 240))
               : "wpckpt-shared";
    WPCKPT_TRY(inj.write(inj.data(), name.c_str(), name.size() + 1));
    WPCKPT_TRY_ASSIGN(long fd, inj.checked_syscall("memfd_create", ctx, SYS_memfd_create, inj.data(), MFD_CLOEXEC));
    made.push_back(static_cast<int>(fd));
    WPCKPT_TRY(inj.checked_syscall("ftruncate", ctx, SYS_ftruncate, static_cast<uint64_t>(fd), size));
    files.memfd_by_inode[key] = static_cast<int>(fd);
  }
  return made;
}

}  // namespace

Result<void> build_mappings(ptrace::Injector& inj, const state::ProcessState& state, const MappingFiles& files) {
  WPCKPT_TRY_ASSIGN(auto now, tracker::read_maps(inj.tid()));
  uint64_t scratch_lo = inj.scratch(), scratch_hi = scratch_lo + ptrace::Injector::kScratchSize;
  for (const auto& v : now) {
    if (tracker::is_kernel_provided(tracker::classify_memory(v))) continue;
    if (v.start < scratch_hi && scratch_lo < v.end) continue;
    WPCKPT_TRY(inj.checked_syscall("munmap", hex_range(v.start, v.end) + " of the new process", SYS_munmap, v.start, v.size()));
  }
  WPCKPT_TRY(move_vdso_group(inj, state, now));
  if (std::any_of(state.mappings.begin(), state.mappings.end(), [](const auto& m) { return m.kind == MemoryKind::Vdso; })) {
    WPCKPT_TRY_ASSIGN(uint64_t site, vdso_syscall_site(state));
    inj.set_syscall_site(site);
  }
  const std::vector<state::Mapping> mappings = regular_mappings(state);
  MappingFiles with_aliases = files;
  WPCKPT_TRY_ASSIGN(std::vector<int> aliases, make_aliased_shmem(inj, mappings, with_aliases));
  ptrace::CallBatch calls(inj);
  for (const auto& m : mappings) WPCKPT_TRY(map_one(inj, calls, m, with_aliases));
  WPCKPT_TRY(calls.flush());
  for (int fd : aliases) WPCKPT_TRY(inj.checked_syscall("close", "shared memory descriptor", SYS_close, static_cast<uint64_t>(fd)));
  return ok();
}

Result<void> finish_mm(ptrace::Injector& inj, const state::ProcessState& state, const MappingFiles& files) {
  ptrace::CallBatch calls(inj);
  for (const auto& m : state.mappings) {
    if (widened_for_fill(m))
      WPCKPT_TRY(calls.add("mprotect", hex_range(m.start, m.end) + " back to its protection", SYS_mprotect,
                           {m.start, m.end - m.start, m.prot, 0, 0, 0}));
    for (const auto& [gs, ge] : m.guards) {
      WPCKPT_TRY(calls.add("install guard region", hex_range(gs, ge), SYS_madvise,
                           {gs, ge - gs, static_cast<uint64_t>(uapi::kMadvGuardInstall), 0, 0, 0}));
    }
  }
  WPCKPT_TRY(calls.flush());

  const auto& mm = state.mm;
  uapi::PrctlMmMap map{};
  map.start_code = mm.start_code;
  map.end_code = mm.end_code;
  map.start_data = mm.start_data;
  map.end_data = mm.end_data;
  map.start_brk = mm.start_brk;
  map.brk = mm.brk;
  map.start_stack = mm.start_stack;
  map.arg_start = mm.arg_start;
  map.arg_end = mm.arg_end;
  map.env_start = mm.env_start;
  map.env_end = mm.env_end;
  map.exe_fd = files.exe_fd >= 0 ? static_cast<uint32_t>(files.exe_fd) : UINT32_MAX;
  uint64_t map_addr = inj.data();
  uint64_t auxv_addr = map_addr + sizeof map;
  size_t auxv_bytes = mm.auxv.size() * sizeof(uint64_t);
  if (auxv_bytes > 0) {
    if (sizeof map + auxv_bytes > ptrace::Injector::data_size())
      return make_error(E2BIG, "PR_SET_MM_MAP", "auxv of " + std::to_string(auxv_bytes) + " bytes");
    WPCKPT_TRY(inj.write(auxv_addr, mm.auxv.data(), auxv_bytes));
    map.auxv = auxv_addr;
    map.auxv_size = static_cast<uint32_t>(auxv_bytes);
  }
  WPCKPT_TRY(inj.write(map_addr, &map, sizeof map));
  auto r = inj.checked_syscall("prctl(PR_SET_MM_MAP)", "exe " + mm.exe_path, SYS_prctl, uapi::kPrSetMm, uapi::kPrSetMmMap,
                map_addr, sizeof map);
  if (!r) {
    Error e = std::move(r).error();
    if (e.err == EPERM)
      return std::move(e).with_hint("setting the executable needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN");
    if (e.err == EBUSY) return std::move(e).with_hint("the old executable is still mapped; this is a wpckpt bug");
    return e;
  }

  for (const auto& a : state.sigactions) {
    uapi::KernelSigaction act{a.handler, a.flags, a.restorer, a.mask};
    WPCKPT_TRY(inj.write(inj.data(), &act, sizeof act));
    WPCKPT_TRY(inj.checked_syscall("rt_sigaction", "signal " + std::to_string(a.signo), SYS_rt_sigaction,
                    static_cast<uint64_t>(a.signo), inj.data(), 0, 8));
  }
  if (!state.comm.empty()) {
    char comm[16] = {};
    std::memcpy(comm, state.comm.data(), std::min<size_t>(state.comm.size(), 15));
    WPCKPT_TRY(inj.write(inj.data(), comm, sizeof comm));
    WPCKPT_TRY(inj.checked_syscall("prctl(PR_SET_NAME)", state.comm, SYS_prctl, PR_SET_NAME, inj.data()));
  }
  return ok();
}

}  // namespace wpckpt::restore
