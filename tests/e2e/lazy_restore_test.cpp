// `wpckpt restore --lazy`: the process runs before its memory is in, a pager
// serves its faults and copies the rest behind it. Checked against
// independent truths: the memory of an eager restore of the same chain
// (/proc/PID/mem), workloads that verify every page they touch, real
// programs' output against an uninterrupted run. And never a silent zero
// page: a pager killed at random points or a corrupt frame kills the process.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "tests/e2e/restore_helpers.hpp"

namespace wpckpt::test {
namespace {

using Clock = std::chrono::steady_clock;

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// The private anonymous memory of `pid` (what a lazy restore fills), by range.
std::map<std::pair<uint64_t, uint64_t>, std::string> anon_memory(pid_t pid) {
  std::map<std::pair<uint64_t, uint64_t>, std::string> out;
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::ifstream mem("/proc/" + std::to_string(pid) + "/mem", std::ios::binary);
  std::string line;
  while (std::getline(maps, line)) {
    std::istringstream in(line);
    std::string range, perms, off, dev, inode, path;
    in >> range >> perms >> off >> dev >> inode;
    std::getline(in >> std::ws, path);
    if (perms.size() < 4 || perms[3] != 'p' || perms[0] != 'r' || inode != "0") continue;
    if (!path.empty() && path != "[heap]" && path != "[stack]" && path.rfind("[anon:", 0) != 0) continue;
    uint64_t a = std::stoull(range.substr(0, range.find('-')), nullptr, 16);
    uint64_t b = std::stoull(range.substr(range.find('-') + 1), nullptr, 16);
    std::string bytes(b - a, '\0');
    mem.clear();
    mem.seekg(static_cast<std::streamoff>(a));
    mem.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!mem) bytes = "<unreadable>";
    out[{a, b}] = std::move(bytes);
  }
  return out;
}

// A lazy restore started as our child, its --json document and stderr in files.
struct LazyRun {
  TempDir dir;
  std::string out = (dir / "restore.json").string(), err = (dir / "restore.err").string();
  ChildProcess restore;

  LazyRun(const std::filesystem::path& img, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {wpckpt_binary(), "restore", "-D", img.string(), "--lazy", "--json"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    restore = ChildProcess::start(argv, {}, out, err);
  }
  // The document once the lazy phase ended (all in, or the process ended first).
  nlohmann::json done(std::chrono::seconds timeout = std::chrono::seconds(120)) {
    bool printed = wait_until([&] { return read_file(out).find('}') != std::string::npos; }, timeout);
    if (!printed) return nullptr;
    sleep_ms(20);  // the rest of the document
    return nlohmann::json::parse(read_file(out), nullptr, false);
  }
  // The pager process: the child of wpckpt restore named wpckpt-pager.
  pid_t pager() const {
    std::string me = std::to_string(restore.pid());
    std::istringstream kids(read_file("/proc/" + me + "/task/" + me + "/children"));
    for (pid_t k; kids >> k;)
      if (read_file("/proc/" + std::to_string(k) + "/comm") == "wpckpt-pager\n") return k;
    return -1;
  }
};

// The part of the workload's output written after `from` bytes.
std::string output_since(const Checkpointed& c, size_t from) {
  std::string all = read_file(c.out);
  return from < all.size() ? all.substr(from) : std::string();
}

// "TICK n ops ..." lines of lazy_pages: the ops counts, in order.
std::vector<uint64_t> tick_ops(const std::string& text) {
  std::vector<uint64_t> ops;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("TICK ", 0) != 0) continue;
    std::istringstream l(line.substr(5));
    uint64_t n = 0, o = 0;
    if (l >> n >> o) ops.push_back(o);
  }
  return ops;
}

// The rseq areas of the threads (process.json): the kernel writes the
// current cpu into them on every return to user space, so they differ
// between any two runs; blanked before comparing.
void blank_rseq_areas(const Checkpointed& c, std::map<std::pair<uint64_t, uint64_t>, std::string>& memory) {
  auto st = nlohmann::json::parse(read_file(c.last / "process.json"));
  for (const auto& t : st["threads"]) {
    uint64_t p = t["rseq"]["abi_pointer"].get<uint64_t>(), n = t["rseq"]["abi_size"].get<uint64_t>();
    for (auto& [range, bytes] : memory)
      if (p >= range.first && p + n <= range.second) bytes.replace(p - range.first, n, std::string(n, '\0'));
  }
}

TEST(LazyRestore, MemoryIsByteIdenticalToAnEagerRestore) {
  Checkpointed c;
  checkpoint(c, {workload("lazy_pages"), "--mib", "96", "--sleep"}, "READY", 1);
  std::map<std::pair<uint64_t, uint64_t>, std::string> eager, lazy;
  {
    KillByPid guard{c.pid};
    ChildProcess restore = start_restore(c.last, c.pid);
    eager = anon_memory(c.pid);
    ::kill(c.pid, SIGKILL);
    restore.wait();
  }
  ASSERT_TRUE(wait_until([&] { return pid_gone(c.pid); }));
  KillByPid guard{c.pid};
  LazyRun run(c.last);
  nlohmann::json doc = run.done();
  ASSERT_TRUE(doc.is_object()) << read_file(run.err);
  ASSERT_TRUE(doc["lazy"]["complete"].get<bool>()) << doc.dump();
  EXPECT_GT(doc["lazy"]["pages_prefetched"].get<uint64_t>() + doc["lazy"]["pages_faulted"].get<uint64_t>(), 20000u);
  // The eager part leaves the libraries' unchanged pages to their files.
  EXPECT_GT(doc["pages_kept_from_file"].get<uint64_t>(), 0u) << doc.dump();
  lazy = anon_memory(c.pid);
  blank_rseq_areas(c, eager);
  blank_rseq_areas(c, lazy);
  ASSERT_EQ(eager.size(), lazy.size());
  size_t bytes = 0;
  for (const auto& [range, data] : eager) {
    ASSERT_TRUE(lazy.count(range)) << std::hex << range.first;
    std::string where;
    for (size_t i = 0; i < data.size() && where.size() < 200; ++i)
      if (lazy[range][i] != data[i]) where += std::to_string(i) + " ";
    EXPECT_TRUE(lazy[range] == data) << "memory at 0x" << std::hex << range.first << " differs at " << where;
    bytes += data.size();
  }
  EXPECT_GT(bytes, 96u << 20);
}

TEST(LazyRestore, WritingProcessIsNotStalledAndReadsNoWrongPage) {
  Checkpointed c;
  checkpoint(c, {workload("lazy_pages"), "--mib", "512", "--threads", "2"}, "READY", 1, [] { sleep_ms(300); });
  const size_t before = read_file(c.out).size();
  KillByPid guard{c.pid};
  const auto t0 = Clock::now();
  LazyRun run(c.last);
  nlohmann::json doc = run.done();
  ASSERT_TRUE(doc.is_object()) << read_file(run.err);
  ASSERT_TRUE(doc["lazy"]["complete"].get<bool>()) << doc.dump();
  const double lazy_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::vector<uint64_t> during = tick_ops(output_since(c, before));
  // It ran and wrote while its memory came in: ticks with growing work.
  ASSERT_GE(during.size(), 2u) << "no progress during the lazy phase of " << lazy_s << " s";
  EXPECT_GT(during.back(), during.front());
  EXPECT_GT(doc["lazy"]["faults_served"].get<uint64_t>(), 0u);
  const size_t mid = read_file(c.out).size();
  sleep_ms(500);
  std::vector<uint64_t> after = tick_ops(output_since(c, mid));
  ASSERT_GE(after.size(), 3u);
  EXPECT_GT(after.back(), after.front());
  EXPECT_EQ(output_since(c, before).find("FAIL"), std::string::npos) << output_since(c, before);
}

TEST(LazyRestore, PagerKilledAtRandomPointsKillsTheProcess) {
  Checkpointed c;
  checkpoint(c, {workload("lazy_pages"), "--mib", "256", "--threads", "2"}, "READY", 1, [] { sleep_ms(200); });
  std::mt19937 rng(std::random_device{}());
  int hits = 0;
  for (int round = 0; round < 5; ++round) {
    ASSERT_TRUE(wait_until([&] { return pid_gone(c.pid); }));
    const size_t before = read_file(c.out).size();
    KillByPid guard{c.pid};
    LazyRun run(c.last);
    pid_t pager = -1;
    ASSERT_TRUE(wait_until([&] { return (pager = run.pager()) > 0 && restored(c.pid); })) << read_file(run.err);
    sleep_ms(std::uniform_int_distribution<int>(0, 150)(rng));
    ASSERT_EQ(::kill(pager, SIGKILL), 0);
    ASSERT_TRUE(wait_until([&] { return read_file(run.out).find('}') != std::string::npos; })) << read_file(run.err);
    if (read_file(run.out).find("\"complete\": true") != std::string::npos) {  // all in before the kill
      ::kill(c.pid, SIGKILL);
      run.restore.wait();
      continue;
    }
    ++hits;
    int status = run.restore.wait(std::chrono::seconds(30));
    const std::string said = read_file(run.out) + read_file(run.err);  // --json: the error is on stdout
    EXPECT_EQ(exit_code_of(status), 1) << said;
    EXPECT_NE(said.find("the pager was killed by signal 9"), std::string::npos) << said;
    EXPECT_NE(said.find("was killed so that it never runs on missing memory"), std::string::npos) << said;
    EXPECT_TRUE(wait_until([&] { return pid_gone(c.pid); })) << "the restored process runs on without its pager";
    EXPECT_EQ(output_since(c, before).find("FAIL"), std::string::npos) << output_since(c, before);
  }
  EXPECT_GE(hits, 3) << "the pager finished before most kills: make the workload larger";
}

TEST(LazyRestore, CorruptFrameKillsTheProcessWithAClearError) {
  Checkpointed c;
  checkpoint(c, {workload("lazy_pages"), "--mib", "64", "--threads", "2"}, "READY", 0);
  const std::filesystem::path data = c.last / "pages.dat";
  const auto size = std::filesystem::file_size(data);
  {
    std::fstream f(data, std::ios::in | std::ios::out | std::ios::binary);
    for (uint64_t off : {size / 3, size / 2, 2 * size / 3}) {
      f.seekg(static_cast<std::streamoff>(off));
      char b = 0;
      f.read(&b, 1);
      b = static_cast<char>(b ^ 0x5a);
      f.seekp(static_cast<std::streamoff>(off));
      f.write(&b, 1);
    }
  }
  const size_t before = read_file(c.out).size();
  KillByPid guard{c.pid};
  LazyRun run(c.last);
  int status = run.restore.wait(std::chrono::seconds(60));
  EXPECT_EQ(exit_code_of(status), 1) << read_file(run.err);
  const std::string err = read_file(run.out) + read_file(run.err);
  EXPECT_NE(err.find("pages.dat"), std::string::npos) << err;
  EXPECT_TRUE(wait_until([&] { return pid_gone(c.pid); }));
  EXPECT_EQ(output_since(c, before).find("FAIL"), std::string::npos) << output_since(c, before);
}

// After the lazy phase the process is as an eager restore leaves it: no
// extra userfaultfd, its agent's uffd registers the memory again, and a
// pre-dump + dump + restore of it is exact (the workload checks every word).
TEST(LazyRestore, LazilyRestoredProcessIsCheckpointedAgainExactly) {
  Checkpointed c;
  checkpoint(c, {workload("dump_selfcheck"), "-t", "2", "-m", "48"}, "READY", 1);
  KillByPid guard{c.pid};
  size_t before = read_file(c.out).size();
  {
    LazyRun run(c.last);
    nlohmann::json doc = run.done();
    ASSERT_TRUE(doc.is_object() && doc["lazy"]["complete"].get<bool>()) << read_file(run.err);
    int uffds = 0;
    for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(c.pid) + "/fd")) {
      std::error_code ec;
      if (std::filesystem::read_symlink(e.path(), ec).string() == "anon_inode:[userfaultfd]") ++uffds;
    }
    EXPECT_EQ(uffds, 1) << "only the agent's userfaultfd stays";
    ASSERT_TRUE(wait_until([&] { return tick_ops(output_since(c, before)).size() >= 3; }));
    TempDir again;
    CommandResult pre = run_wpckpt({"pre-dump", "-t", std::to_string(c.pid), "-D", (again / "pre").string()});
    ASSERT_EQ(pre.exit_code, 0) << pre.err;
    sleep_ms(200);
    CommandResult dump = run_wpckpt({"dump", "-t", std::to_string(c.pid), "-D", (again / "dump").string(),
                                     "--prev-images-dir", (again / "pre").string()});
    ASSERT_EQ(dump.exit_code, 0) << dump.err;
    run.restore.wait();
    ASSERT_TRUE(wait_until([&] { return pid_gone(c.pid); }));
    before = read_file(c.out).size();
    ChildProcess restore = start_restore(again / "dump", c.pid);
    ASSERT_TRUE(wait_until([&] { return tick_ops(output_since(c, before)).size() >= 5; }));
  }
  EXPECT_EQ(read_file(c.out).find("FAIL"), std::string::npos) << read_file(c.out);
}

// Children forked while pages are missing check pages of their copy: each
// is served through the uffd the kernel made for it (EVENT_FORK).
TEST(LazyRestore, ForkingProcessIsServedInItsChildrenToo) {
  Checkpointed c;
  checkpoint(c, {workload("lazy_pages"), "--mib", "256", "--threads", "1", "--fork"}, "READY", 1,
             [] { sleep_ms(200); });
  KillByPid guard{c.pid};
  const size_t before = read_file(c.out).size();
  LazyRun run(c.last);
  ASSERT_TRUE(wait_until([&] { return restored(c.pid); }));
  ASSERT_EQ(::kill(c.pid, SIGUSR1), 0);  // start forking, while its memory comes in
  nlohmann::json doc = run.done();
  ASSERT_TRUE(doc.is_object() && doc["lazy"]["complete"].get<bool>()) << read_file(run.out) << read_file(run.err);
  EXPECT_GT(doc["lazy"]["forks"].get<uint64_t>(), 0u) << doc.dump();
  // Children forked after the lazy phase check their pages too.
  EXPECT_TRUE(wait_until([&] { return output_since(c, before).find("FORKS 20\n") != std::string::npos; }));
  EXPECT_EQ(output_since(c, before).find("FAIL"), std::string::npos) << output_since(c, before);
}

// The highest "FORKS n" of lazy_pages --fork in `text` (0: none).
uint64_t last_forks(const std::string& text) {
  uint64_t last = 0;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("FORKS ", 0) == 0) last = std::max<uint64_t>(last, std::stoull(line.substr(6)));
  return last;
}

// Where every thread of `pid` (and of its children) waits: wchan and kernel
// stack, for the message of a test that found the process stalled.
std::string where_threads_wait(pid_t pid) {
  std::string out;
  std::vector<pid_t> todo{pid};
  while (!todo.empty()) {
    const std::string base = "/proc/" + std::to_string(todo.back());
    todo.pop_back();
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator(base + "/task", ec)) {
      const std::string t = task.path().string();
      out += t + " " + read_file(t + "/comm") + "  wchan " + read_file(t + "/wchan") + "\n" + read_file(t + "/stack");
      std::istringstream kids(read_file(t + "/children"));
      for (pid_t k; kids >> k;) todo.push_back(k);
    }
  }
  return out;
}

// A fork always under way while the lazy phase ends: a FORK event raised
// between the pager's last read and its unregister must still be read (else
// the fork waits for it forever), and every fork after the lazy phase works.
TEST(LazyRestore, ForkInATightLoopIsNeverLeftWaitingWhenThePagerEnds) {
  Checkpointed c;
  checkpoint(c, {workload("lazy_pages"), "--mib", "64", "--threads", "1", "--fork", "--fork-gap-us", "0"}, "READY", 0);
  for (int round = 0; round < 8; ++round) {
    ASSERT_TRUE(wait_until([&] { return pid_gone(c.pid); }));
    const size_t before = read_file(c.out).size();
    KillByPid guard{c.pid};
    LazyRun run(c.last);
    ASSERT_TRUE(wait_until([&] { return restored(c.pid); })) << read_file(run.err);
    ASSERT_EQ(::kill(c.pid, SIGUSR1), 0);  // fork without pause, while the memory comes in and after
    nlohmann::json doc = run.done();
    ASSERT_TRUE(doc.is_object() && doc["lazy"]["complete"].get<bool>()) << read_file(run.out) << read_file(run.err);
    const uint64_t at_end = last_forks(output_since(c, before));
    const bool forking = wait_until([&] { return last_forks(output_since(c, before)) >= at_end + 100; },
                                    std::chrono::seconds(20));
    EXPECT_TRUE(forking) << "round " << round << ": no fork for 20 s after the lazy phase (FORKS " << at_end
                         << ", events " << doc["lazy"]["events"] << ")\n"
                         << where_threads_wait(c.pid);
    EXPECT_EQ(output_since(c, before).find("FAIL"), std::string::npos) << output_since(c, before);
    ::kill(c.pid, SIGKILL);
    run.restore.wait(std::chrono::seconds(30));
    if (!forking) break;
  }
}

TEST(LazyRestore, RefusedWithDetach) {
  Checkpointed c;
  checkpoint(c, {workload("lazy_pages"), "--mib", "8", "--sleep"}, "READY", 0);
  CommandResult r = run_wpckpt({"restore", "-D", c.last.string(), "--lazy", "-d"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("restore without -d, or without --lazy"), std::string::npos) << r.err;
  EXPECT_TRUE(pid_gone(c.pid));
}

// zdtm workloads check their own state after SIGUSR1 and exit PASS.
void lazy_restore_and_check(const Checkpointed& c) {
  KillByPid guard{c.pid};
  ChildProcess restore = start_restore(c.last, c.pid, {"--lazy"});
  ASSERT_EQ(::kill(c.pid, SIGUSR1), 0);
  int status = restore.wait(std::chrono::seconds(60));
  EXPECT_EQ(exit_code_of(status), 0) << read_file(c.out);
  EXPECT_NE(read_file(c.out).find("PASS"), std::string::npos) << read_file(c.out);
  EXPECT_EQ(read_file(c.out).find("FAIL"), std::string::npos) << read_file(c.out);
}

TEST(LazyRestore, ZdtmThreadsWithMutexesAndCondvars) {
  Checkpointed c;
  checkpoint(c, {workload("zdtm_counter"), "4", "32"}, "READY", 2);
  lazy_restore_and_check(c);
}

TEST(LazyRestore, ZdtmBigHeapWithTransparentHugePages) {
  Checkpointed c;
  checkpoint(c, {workload("zdtm_counter"), "2", "256", "thp"}, "READY", 1);
  lazy_restore_and_check(c);
}

TEST(LazyRestore, ZdtmSignalsAndFiles) {
  Checkpointed s;
  checkpoint(s, {workload("zdtm_signals")}, "READY");
  lazy_restore_and_check(s);
  Checkpointed f;
  checkpoint(f, {workload("zdtm_files"), (f.dir / "data").string()}, "READY");
  lazy_restore_and_check(f);
}

}  // namespace
}  // namespace wpckpt::test
