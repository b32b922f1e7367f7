// Attach (#14 item 1): processes started WITHOUT `wpckpt run` are pre-dumped,
// dumped and restored like cooperating ones; `wpckpt untrack` leaves them as
// they were; what an attached process may do to the descriptors wpckpt put
// in it (exec, close them, fork, exit) never makes a pre-dump miss a page.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/e2e/predump_helpers.hpp"
#include "tests/e2e/restore_helpers.hpp"

namespace wpckpt::test {
namespace {

namespace fs = std::filesystem;

constexpr const char kUffdLink[] = "anon_inode:[userfaultfd]";
constexpr const char kPageLink[] = "/memfd:wpckpt-agent (deleted)";

// fd number -> what it points to.
std::map<int, std::string> fd_table(pid_t pid) {
  std::map<int, std::string> out;
  const fs::path dir = "/proc/" + std::to_string(pid) + "/fd";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::error_code link_ec;
    out[std::stoi(e.path().filename().string())] = fs::read_symlink(e.path(), link_ec).string();
  }
  return out;
}

int count_links(const std::map<int, std::string>& fds, const std::string& link) {
  int n = 0;
  for (const auto& [fd, target] : fds) n += target == link;
  return n;
}

// The "flags:" of /proc/PID/fdinfo/N (octal).
unsigned fd_flags(pid_t pid, int fd) {
  std::string info = read_file("/proc/" + std::to_string(pid) + "/fdinfo/" + std::to_string(fd));
  size_t pos = info.find("flags:");
  return pos == std::string::npos ? 0 : static_cast<unsigned>(std::stoul(info.substr(pos + 6), nullptr, 8));
}

std::string maps_of(pid_t pid) { return read_file("/proc/" + std::to_string(pid) + "/maps"); }

// `wpckpt ARGS --json`: its document; exit code checked by the caller via `code`.
nlohmann::json wpckpt_json(std::vector<std::string> args, int* code = nullptr, std::string* err = nullptr) {
  args.push_back("--json");
  CommandResult r = run_wpckpt(args);
  if (code) *code = r.exit_code;
  if (err) *err = r.err + r.out;
  if (!code) {
    EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  }
  try {
    return nlohmann::json::parse(r.out);
  } catch (...) {
    return {};
  }
}

nlohmann::json pre_dump_json(pid_t pid, const fs::path& dir, const fs::path& parent = {}) {
  std::vector<std::string> args = {"pre-dump", "-t", std::to_string(pid), "-D", dir.string()};
  if (!parent.empty()) args.insert(args.end(), {"--prev-images-dir", parent.string()});
  return wpckpt_json(args);
}

void wait_for_output(const std::string& out, const std::string& what) {
  ASSERT_TRUE(wait_until([&] { return read_file(out).find(what) != std::string::npos; }))
      << "waiting for " << what << " in: " << read_file(out);
}

TEST(Attach, UntrackLeavesTheProcessAsItWas) {
  TempDir dir;
  const std::string out = dir / "out";
  ChildProcess proc = ChildProcess::start({workload("zdtm_counter"), "2", "8"}, {}, out);
  const pid_t pid = proc.pid();
  wait_for_output(out, "READY");
  const auto fds_before = fd_table(pid);
  const std::string maps_before = maps_of(pid);

  nlohmann::json a = pre_dump_json(pid, dir / "a");
  ASSERT_FALSE(a.is_null());
  EXPECT_EQ(a["attach"]["tracking"], "new");
  EXPECT_FALSE(a["incremental"].get<bool>());
  const int uffd = a["attach"]["uffd_fd"].get<int>(), page = a["attach"]["state_fd"].get<int>();
  EXPECT_GT(a["attach"]["frozen_ms"].get<double>(), 0.0);
  std::cout << "attach froze the process for " << a["attach"]["frozen_ms"].get<double>() << " ms\n";
  // High free numbers, close-on-exec, exactly the two of them more.
  auto fds = fd_table(pid);
  EXPECT_EQ(fds.size(), fds_before.size() + 2);
  EXPECT_EQ(fds[uffd], kUffdLink);
  EXPECT_EQ(fds[page], kPageLink);
  EXPECT_GE(std::min(uffd, page), 1000);
  EXPECT_NE(fd_flags(pid, uffd) & O_CLOEXEC, 0u);
  EXPECT_NE(fd_flags(pid, page) & O_CLOEXEC, 0u);
  // From now on it is tracked like a cooperating process.
  nlohmann::json b = pre_dump_json(pid, dir / "b", dir / "a");
  EXPECT_EQ(b["attach"]["tracking"], "attached");
  EXPECT_TRUE(b["incremental"].get<bool>()) << b["whole_reason"];
  // A dump would leave the two descriptors out (the image is checked below).

  nlohmann::json u = wpckpt_json({"untrack", "-t", std::to_string(pid)});
  EXPECT_EQ(u["uffd_fd"], uffd);
  EXPECT_EQ(u["state_fd"], page);
  EXPECT_GT(u["areas_unregistered"].get<uint64_t>(), 0u);
  EXPECT_EQ(fd_table(pid), fds_before);
  EXPECT_EQ(maps_of(pid), maps_before);
  EXPECT_EQ(read_file("/proc/" + std::to_string(pid) + "/smaps").find(" uw"), std::string::npos)
      << "an area is still registered";
  // Nothing left to undo.
  int code = 0;
  std::string err;
  wpckpt_json({"untrack", "-t", std::to_string(pid)}, &code, &err);
  EXPECT_EQ(code, 1);
  EXPECT_NE(err.find("wpckpt has attached nothing to it"), std::string::npos) << err;
  // It computes correctly: the workload checks its counters and heap.
  ASSERT_EQ(::kill(pid, SIGUSR1), 0);
  EXPECT_EQ(exit_code_of(proc.wait()), 0);
  EXPECT_NE(read_file(out).find("PASS"), std::string::npos) << read_file(out);
}

TEST(Attach, UntrackRefusesACooperatingProcess) {
  ChildProcess proc = ChildProcess::start({wpckpt_binary(), "run", "--", "/bin/sleep", "60"});
  ASSERT_TRUE(wait_until([&] { return count_links(fd_table(proc.pid()), kPageLink) == 1; }));
  int code = 0;
  std::string err;
  wpckpt_json({"untrack", "-t", std::to_string(proc.pid())}, &code, &err);
  EXPECT_EQ(code, 1);
  EXPECT_NE(err.find("the wpckpt agent tracks it"), std::string::npos) << err;
  EXPECT_EQ(count_links(fd_table(proc.pid()), kPageLink), 1);
}

// dirty_writer started plainly; its memory compared page by page with the chain.
TEST(Attach, PreDumpsOfAnAttachedProcessAreExact) {
  TempDir dir;
  fs::path ready = dir / "ready";
  ChildProcess proc = ChildProcess::start({workload("dirty_writer"), "--ready", ready.string(), "--mib", "16",
                                           "--threads", "2", "--read-into-heap", "--churn", "--discard"});
  ASSERT_TRUE(wait_until([&] { return fs::exists(ready); }));
  nlohmann::json a = pre_dump_json(proc.pid(), dir / "a");
  EXPECT_EQ(a["attach"]["tracking"], "new");
  usleep(100'000);
  nlohmann::json b = pre_dump_json(proc.pid(), dir / "b", dir / "a");
  EXPECT_TRUE(b["incremental"].get<bool>());
  ASSERT_EQ(::kill(proc.pid(), SIGSTOP), 0);
  ASSERT_TRUE(wait_until([&] { return all_threads_stopped(proc.pid()); }));
  nlohmann::json c = pre_dump_json(proc.pid(), dir / "c", dir / "b");
  EXPECT_TRUE(c["incremental"].get<bool>());
  Mismatch m = compare_with_process(proc.pid(), dir / "c");
  EXPECT_GT(m.pages_compared, 4096u);
  EXPECT_EQ(m.pages_differing, 0u) << std::hex << m.first_bad << " " << m.first_area;
}

// A python3 program started without `wpckpt run`: attach + pre-dumps + dump
// + restore finish with byte-identical output.
TEST(Attach, Python3StartedPlainlyRestoresByteIdentical) {
  TempDir dir;
  const std::vector<std::string>& argv = kPythonComputation;
  const std::string expected = dir / "expected", got = dir / "got";
  auto started = std::chrono::steady_clock::now();
  {
    ChildProcess plain = ChildProcess::start(argv, {}, expected);
    ASSERT_EQ(exit_code_of(plain.wait(std::chrono::seconds(120))), 0);
  }
  auto plain_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  const int interval_ms = std::max(10, static_cast<int>(plain_ms.count() / 12));
  ChildProcess proc = ChildProcess::start(argv, {}, got);
  const pid_t pid = proc.pid();
  fs::path parent;
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    const bool last = i == 2;
    fs::path img = dir / (last ? "dump" : "pre" + std::to_string(i));
    std::vector<std::string> args = {last ? "dump" : "pre-dump", "-t", std::to_string(pid), "-D", img.string()};
    if (!parent.empty()) args.insert(args.end(), {"--prev-images-dir", parent.string()});
    nlohmann::json j = wpckpt_json(args);
    ASSERT_FALSE(j.is_null()) << "(the program may have finished too early)";
    EXPECT_EQ(j["attach"]["tracking"], i == 0 ? "new" : "attached");
    parent = img;
  }
  proc.wait();
  ASSERT_TRUE(pid_gone(pid));
  KillByPid guard{pid};
  ChildProcess restore = ChildProcess::start({wpckpt_binary(), "restore", "-D", parent.string()});
  ASSERT_EQ(exit_code_of(restore.wait(std::chrono::seconds(180))), 0);
  EXPECT_EQ(read_file(expected), read_file(got)) << "output differs from the uninterrupted run";
}

// A workload started plainly, attached, dumped and restored: it computes
// correctly, and the restored process is still an attached one (untrack
// removes the descriptors restore re-created).
TEST(Attach, WorkloadStartedPlainlyIsRestoredAndStaysAttached) {
  TempDir dir;
  const std::string out = dir / "out";
  ChildProcess proc = ChildProcess::start({workload("zdtm_counter"), "2", "8"}, {}, out);
  const pid_t pid = proc.pid();
  wait_for_output(out, "READY");
  nlohmann::json a = pre_dump_json(pid, dir / "a");
  const int uffd = a["attach"]["uffd_fd"].get<int>(), page = a["attach"]["state_fd"].get<int>();
  nlohmann::json d = wpckpt_json({"dump", "-t", std::to_string(pid), "-D", (dir / "dump").string(),
                                  "--prev-images-dir", (dir / "a").string()});
  EXPECT_EQ(d["attach"]["tracking"], "attached");
  proc.wait();
  ASSERT_TRUE(pid_gone(pid));
  // The dump left the two descriptors out, and said they were attached.
  const std::string state = read_file(dir / "dump" / "process.json");
  auto st = nlohmann::json::parse(state);
  EXPECT_EQ(st["tracking"]["uffd_fd"], uffd);
  EXPECT_EQ(st["tracking"]["agent_state_fd"], page);
  EXPECT_EQ(st["tracking"]["attached"], true);
  for (const auto& f : st["fds"]) EXPECT_TRUE(f["fd"] != uffd && f["fd"] != page) << f.dump();

  ChildProcess restore = start_restore(dir / "dump", pid);
  ASSERT_TRUE(restored(pid));
  KillByPid cleanup{pid};
  auto fds = fd_table(pid);
  EXPECT_EQ(fds[uffd], kUffdLink);
  EXPECT_EQ(fds[page], kPageLink);
  nlohmann::json again = pre_dump_json(pid, dir / "b");
  EXPECT_EQ(again["attach"]["tracking"], "attached");
  nlohmann::json u = wpckpt_json({"untrack", "-t", std::to_string(pid)});
  EXPECT_EQ(u["state_fd"], page);
  EXPECT_EQ(count_links(fd_table(pid), kPageLink), 0);
  ASSERT_EQ(::kill(pid, SIGUSR1), 0);
  EXPECT_EQ(exit_code_of(restore.wait()), 0);
  EXPECT_NE(read_file(out).find("PASS"), std::string::npos) << read_file(out);
  cleanup.pid = -1;
}

// A python3 program that, on a word in file "go", execs, closes all its
// descriptors, closes one, or forks; it keeps running afterwards.
const char kLifecycle[] =
    "import os, sys, time\n"
    "d = sys.argv[1]\n"
    "parent = os.getppid()\n"
    "def wait(name):\n"
    "    p = os.path.join(d, name)\n"
    "    while not os.path.exists(p + '.done'):\n"
    "        if os.getppid() != parent: os._exit(1)  # a fork child whose parent was killed\n"
    "        time.sleep(0.01)\n"
    "    return open(p).read()\n"
    "buf = bytearray(4 << 20)\n"
    "print('READY', flush=True)\n"
    "what = wait('go')\n"
    "if what == 'exec': os.execv('/bin/sleep', ['sleep', '60'])\n"
    "elif what == 'closeall': os.closerange(3, 65536)\n"
    "elif what.startswith('close '): os.close(int(what.split()[1]))\n"
    "elif what == 'fork':\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        parent = os.getppid()\n"
    "        print(f'CHILD {os.getpid()}', flush=True)\n"
    "        wait('child-exit')\n"
    "        os._exit(0)\n"
    "    os.waitpid(pid, 0)\n"
    "    print('REAPED', flush=True)\n"
    "elif what == 'exit': sys.exit(0)\n"
    "for i in range(0, len(buf), 4096): buf[i] = 7\n"
    "print('DONE', flush=True)\n"
    "while True: time.sleep(0.05)\n";

struct Lifecycle {
  TempDir dir;
  std::string out;
  ChildProcess proc;
  nlohmann::json first;  // the first pre-dump (attached)

  void start() {
    out = dir / "out";
    proc = ChildProcess::start({"/usr/bin/python3", "-c", kLifecycle, dir.path().string()}, {}, out);
    wait_for_output(out, "READY");
    first = pre_dump_json(proc.pid(), dir / "a");
    ASSERT_EQ(first["attach"]["tracking"], "new");
  }
  void say(const std::string& name, const std::string& word) {
    std::ofstream(dir / name) << word;
    std::ofstream(dir / (name + ".done")).close();
  }
};

TEST(AttachLifecycle, ExecLosesTrackingAndTheNextPreDumpAttachesAnewWhole) {
  Lifecycle l;
  l.start();
  if (HasFatalFailure()) return;
  l.say("go", "exec");
  ASSERT_TRUE(wait_until([&] {
    std::error_code ec;
    return fs::read_symlink("/proc/" + std::to_string(l.proc.pid()) + "/exe", ec) == "/usr/bin/sleep";
  }));
  EXPECT_EQ(count_links(fd_table(l.proc.pid()), kPageLink), 0) << "close-on-exec";
  nlohmann::json b = pre_dump_json(l.proc.pid(), l.dir / "b", l.dir / "a");
  EXPECT_EQ(b["attach"]["tracking"], "new");
  EXPECT_NE(b["attach"]["reason"].get<std::string>().find("had no tracking"), std::string::npos);
  EXPECT_FALSE(b["incremental"].get<bool>());
}

TEST(AttachLifecycle, ClosingAllDescriptorsIsNoticedAndTheNextPreDumpIsWhole) {
  Lifecycle l;
  l.start();
  if (HasFatalFailure()) return;
  l.say("go", "closeall");
  wait_for_output(l.out, "DONE");
  EXPECT_EQ(count_links(fd_table(l.proc.pid()), kPageLink), 0);
  nlohmann::json b = pre_dump_json(l.proc.pid(), l.dir / "b", l.dir / "a");
  EXPECT_EQ(b["attach"]["tracking"], "new");
  EXPECT_FALSE(b["incremental"].get<bool>());
  ASSERT_EQ(::kill(l.proc.pid(), SIGSTOP), 0);
  ASSERT_TRUE(wait_until([&] { return all_threads_stopped(l.proc.pid()); }));
  nlohmann::json c = pre_dump_json(l.proc.pid(), l.dir / "c", l.dir / "b");
  EXPECT_TRUE(c["incremental"].get<bool>());
  Mismatch m = compare_with_process(l.proc.pid(), l.dir / "c");
  EXPECT_EQ(m.pages_differing, 0u) << std::hex << m.first_bad << " " << m.first_area;
}

TEST(AttachLifecycle, ClosingTheUffdIsNoticedAndWhatIsLeftIsReplaced) {
  Lifecycle l;
  l.start();
  if (HasFatalFailure()) return;
  const int uffd = l.first["attach"]["uffd_fd"].get<int>();
  l.say("go", "close " + std::to_string(uffd));
  wait_for_output(l.out, "DONE");  // it wrote 1024 pages after closing it: none may be missed
  nlohmann::json b = pre_dump_json(l.proc.pid(), l.dir / "b", l.dir / "a");
  EXPECT_EQ(b["attach"]["tracking"], "new");
  EXPECT_NE(b["attach"]["reason"].get<std::string>().find("closed the userfaultfd"), std::string::npos)
      << b["attach"];
  EXPECT_FALSE(b["incremental"].get<bool>());
  auto fds = fd_table(l.proc.pid());
  EXPECT_EQ(count_links(fds, kPageLink), 1) << "the old page was closed";
  EXPECT_EQ(count_links(fds, kUffdLink), 1);
  ASSERT_EQ(::kill(l.proc.pid(), SIGSTOP), 0);
  ASSERT_TRUE(wait_until([&] { return all_threads_stopped(l.proc.pid()); }));
  nlohmann::json c = pre_dump_json(l.proc.pid(), l.dir / "c", l.dir / "b");
  Mismatch m = compare_with_process(l.proc.pid(), l.dir / "c");
  EXPECT_EQ(m.pages_differing, 0u) << std::hex << m.first_bad << " " << m.first_area;
}

TEST(AttachLifecycle, AForkChildIsAttachedAnewAndItsParentStaysTracked) {
  Lifecycle l;
  l.start();
  if (HasFatalFailure()) return;
  const pid_t parent = l.proc.pid();
  l.say("go", "fork");
  // The whole line: the pid may be written after the word.
  std::string text;
  ASSERT_TRUE(wait_until([&] {
    text = read_file(l.out);
    size_t at = text.find("CHILD ");
    return at != std::string::npos && text.find('\n', at) != std::string::npos;
  })) << read_file(l.out);
  const pid_t child = std::stoi(text.substr(text.find("CHILD ") + 6));
  // The child inherited the parent's two descriptors.
  auto inherited = fd_table(child);
  EXPECT_EQ(count_links(inherited, kPageLink), 1);
  nlohmann::json c = pre_dump_json(child, l.dir / "child");
  EXPECT_EQ(c["attach"]["tracking"], "new");
  EXPECT_NE(c["attach"]["reason"].get<std::string>().find("fork child of pid " + std::to_string(parent)),
            std::string::npos)
      << c["attach"];
  auto fds = fd_table(child);
  EXPECT_EQ(count_links(fds, kPageLink), 1) << "the inherited page was replaced";
  EXPECT_EQ(count_links(fds, kUffdLink), 1) << "the inherited uffd was replaced";
  EXPECT_EQ(fds.count(l.first["attach"]["state_fd"].get<int>()), 0u);
  l.say("child-exit", "");
  wait_for_output(l.out, "DONE");
  // The parent was not disturbed: its chain continues as a delta.
  nlohmann::json b = pre_dump_json(parent, l.dir / "b", l.dir / "a");
  EXPECT_EQ(b["attach"]["tracking"], "attached");
  EXPECT_TRUE(b["incremental"].get<bool>()) << b["whole_reason"];
  ASSERT_EQ(::kill(parent, SIGSTOP), 0);
  ASSERT_TRUE(wait_until([&] { return all_threads_stopped(parent); }));
  nlohmann::json d = pre_dump_json(parent, l.dir / "d", l.dir / "b");
  Mismatch m = compare_with_process(parent, l.dir / "d");
  EXPECT_EQ(m.pages_differing, 0u) << std::hex << m.first_bad << " " << m.first_area;
}

TEST(AttachLifecycle, AnExitedProcessIsReportedGone) {
  Lifecycle l;
  l.start();
  if (HasFatalFailure()) return;
  const pid_t pid = l.proc.pid();
  l.say("go", "exit");
  EXPECT_EQ(exit_code_of(l.proc.wait()), 0);
  for (const char* verb : {"pre-dump", "untrack"}) {
    int code = 0;
    std::string err;
    std::vector<std::string> args = {verb, "-t", std::to_string(pid)};
    if (std::string(verb) == "pre-dump") args.insert(args.end(), {"-D", (l.dir / "b").string()});
    wpckpt_json(args, &code, &err);
    EXPECT_EQ(code, 1) << verb;
    EXPECT_NE(err.find("No such process"), std::string::npos) << verb << ": " << err;
  }
  EXPECT_FALSE(fs::exists(l.dir / "b"));
}

}  // namespace
}  // namespace wpckpt::test
