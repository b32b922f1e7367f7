// A small, test-only capture of a stopped process into a real image (the
// state and every readable page), so that the restore engine can be tested
// on its own: no signal handlers, no pending signals, descriptors limited to
// regular files and the inherited 0-2. `wpckpt dump` is the real thing.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dump-format/image.hpp"
#include "lib/base/uapi/process.hpp"
#include "lib/ptrace/freezer.hpp"
#include "lib/ptrace/injector.hpp"
#include "lib/ptrace/regs.hpp"
#include "lib/restore/validate.hpp"
#include "lib/state/process_state.hpp"
#include "tracker/memory_kind.hpp"
#include "tracker/proc_maps.hpp"

namespace wpckpt::test {

inline std::vector<std::string> stat_fields(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(in)), {});
  std::istringstream rest(all.substr(all.rfind(')') + 2));
  std::vector<std::string> f{"pid", "comm"};
  std::string x;
  while (rest >> x) f.push_back(x);
  return f;  // f[i] is field i+1 of proc(5)
}

inline state::FileIdentity identity_of(const std::string& path) {
  state::FileIdentity id{path};
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0) {
    id.dev = st.st_dev;
    id.inode = st.st_ino;
    id.size = static_cast<uint64_t>(st.st_size);
    id.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  }
  return id;
}

// Freezes `pid`, writes a one-image dump into `dir` and kills the process.
inline Result<void> mini_dump(pid_t pid, const std::filesystem::path& dir) {
  WPCKPT_TRY_ASSIGN(auto frozen, ptrace::Freezer::freeze(pid));
  state::ProcessState s;
  s.pid = pid;
  s.xcr0 = ptrace::xcr0();
  s.xsave_size = ptrace::xsave_size();
  std::string proc = "/proc/" + std::to_string(pid);
  s.cwd = std::filesystem::read_symlink(proc + "/cwd");
  s.root = "/";
  for (pid_t tid : frozen.tids()) {
    state::ThreadState t;
    t.tid = tid;
    t.is_main = tid == pid;
    WPCKPT_TRY_ASSIGN(auto regs, ptrace::get_regs(tid));
    std::memcpy(&t.regs, &regs, sizeof regs);
    WPCKPT_TRY_ASSIGN(t.xsave, ptrace::get_xsave(tid));
    WPCKPT_TRY_ASSIGN(t.sigmask, ptrace::get_sigmask(tid));
    {
      // clear_child_tid (pthread_join waits on it) and, from the main thread, the handlers.
      WPCKPT_TRY_ASSIGN(auto inj, ptrace::Injector::prepare(tid));
      WPCKPT_TRY_ASSIGN(long r, inj->syscall(SYS_prctl, PR_GET_TID_ADDRESS, inj->data()));
      if (r == 0) WPCKPT_TRY(inj->read(inj->data(), &t.clear_child_tid, 8));
      for (int sig = 1; sig <= 64 && t.is_main; ++sig) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        uapi::KernelSigaction act{};
        WPCKPT_TRY_ASSIGN(long got, inj->syscall(SYS_rt_sigaction, static_cast<uint64_t>(sig), 0, inj->data(), 8));
        if (got != 0) continue;
        WPCKPT_TRY(inj->read(inj->data(), &act, sizeof act));
        if (act.handler != 0) s.sigactions.push_back({sig, act.handler, act.flags, act.restorer, act.mask});
      }
      WPCKPT_TRY(inj->cure());
    }
    WPCKPT_TRY_ASSIGN(auto rseq, ptrace::get_rseq(tid));
    t.rseq = {rseq.abi_pointer, rseq.abi_size, rseq.signature};
    std::ifstream comm(proc + "/task/" + std::to_string(tid) + "/comm");
    std::getline(comm, t.name);
    s.threads.push_back(std::move(t));
  }
  auto f = stat_fields(pid);
  auto num = [&](int field) { return std::stoull(f[static_cast<size_t>(field - 1)]); };
  s.mm.start_code = num(26);
  s.mm.end_code = num(27);
  s.mm.start_stack = num(28);
  s.mm.start_data = num(45);
  s.mm.end_data = num(46);
  s.mm.start_brk = num(47);
  s.mm.arg_start = num(48);
  s.mm.arg_end = num(49);
  s.mm.env_start = num(50);
  s.mm.env_end = num(51);
  s.mm.brk = s.mm.start_brk;
  {
    std::ifstream in(proc + "/auxv", std::ios::binary);
    uint64_t v;
    while (in.read(reinterpret_cast<char*>(&v), 8)) s.mm.auxv.push_back(v);
  }
  s.mm.exe_path = std::filesystem::read_symlink(proc + "/exe");
  auto exe = identity_of(s.mm.exe_path);
  s.mm.exe_dev = exe.dev;
  s.mm.exe_inode = exe.inode;
  WPCKPT_TRY_ASSIGN(s.vdso_image, restore::own_vdso_image());

  WPCKPT_TRY_ASSIGN(auto vmas, tracker::read_smaps(pid));
  std::vector<image::MemoryArea> areas;
  for (const auto& v : vmas) {
    state::Mapping m;
    m.start = v.start;
    m.end = v.end;
    m.prot = (v.read ? PROT_READ : 0) | (v.write ? PROT_WRITE : 0) | (v.exec ? PROT_EXEC : 0);
    m.shared = v.shared;
    m.name = v.name;
    m.file_offset = v.offset;
    m.vm_flags = v.vm_flags;
    m.kind = tracker::classify_memory(v);
    if (m.kind == tracker::MemoryKind::Heap) s.mm.brk = v.end;
    if (tracker::maps_file_again(m.kind)) m.file = identity_of(v.name);
    bool contents_in_image = !tracker::is_kernel_provided(m.kind) && v.read && !v.shared;
    if (contents_in_image) {
      image::MemoryArea a;
      a.start = v.start;
      a.end = v.end;
      a.prot = v.prot_string();
      a.backing = tracker::memory_kind_name(m.kind);
      a.path = v.name;
      areas.push_back(a);
    }
    s.mappings.push_back(m);
  }
  for (const auto& e : std::filesystem::directory_iterator(proc + "/fd")) {
    state::FdState fd;
    fd.fd = std::stoi(e.path().filename());
    std::string target = std::filesystem::read_symlink(e.path());
    if (target[0] != '/' && target.rfind("pipe:", 0) != 0) continue;  // sockets, anon inodes: not for this helper
    if (target.rfind("pipe:", 0) == 0 && fd.fd > 2) continue;
    std::ifstream info(proc + "/fdinfo/" + std::to_string(fd.fd));
    std::string key;
    while (info >> key) {
      if (key == "pos:") info >> fd.pos;
      else if (key == "flags:") {
        std::string oct;
        info >> oct;
        fd.flags = std::stoi(oct, nullptr, 8);
      }
    }
    fd.cloexec = fd.flags & O_CLOEXEC;
    fd.object_id = static_cast<uint64_t>(fd.fd) + 1;
    if (target == "/dev/null") fd.kind = state::FdKind::DevNull;
    else if (target.rfind("/dev/", 0) == 0 || target.rfind("pipe:", 0) == 0) fd.kind = state::FdKind::Tty;
    else fd.kind = state::FdKind::File;
    fd.file = identity_of(target);
    s.fds.push_back(fd);
  }

  WPCKPT_TRY_ASSIGN(auto writer, image::ImageWriter::create(dir, image::ImageKind::Dump, std::nullopt, {}));
  writer->set_areas(areas);
  WPCKPT_TRY_ASSIGN(std::string json, state::serialize(s));
  WPCKPT_TRY(writer->add_file(state::kProcessStateFile, std::as_bytes(std::span(json))));
  int mem = ::open((proc + "/mem").c_str(), O_RDONLY);
  std::vector<std::byte> buf;
  for (const auto& a : areas) {
    buf.resize(a.end - a.start);
    if (pread(mem, buf.data(), buf.size(), static_cast<off_t>(a.start)) != static_cast<ssize_t>(buf.size())) {
      ::close(mem);
      return errno_error("read memory", std::to_string(a.start));
    }
    WPCKPT_TRY(writer->add_pages(a.start, buf));
  }
  ::close(mem);
  WPCKPT_TRY(writer->commit());
  // Threads we trace are reaped by us, each one, before the leader can be.
  std::vector<pid_t> tids = frozen.tids();
  ::kill(pid, SIGKILL);
  for (pid_t t : tids)
    if (t != pid) waitpid(t, nullptr, __WALL);
  waitpid(pid, nullptr, __WALL);
  frozen.detach();
  return ok();
}

}  // namespace wpckpt::test
