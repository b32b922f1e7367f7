// image_bench: write and read throughput (MB/s of raw pages) and ratio of
// the image format on (a) the heap of a real python3 process, (b) random
// pages, (c) mostly zero pages — side by side with memcpy and single-threaded
// zstd at the same level, the limits we compare with. Then the frame-size and
// level sweeps that chose the defaults (FORMAT.md "Frame size and level").
//
// Usage: image_bench [MiB per data set, default 256] [scratch dir, default /tmp]
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <string>
#include <vector>

#include "dump-format/digest.hpp"
#include "dump-format/frame_codec.hpp"
#include "dump-format/image.hpp"

namespace fs = std::filesystem;
using namespace wpckpt::image;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
// CPU seconds of the whole process (all threads): on a shared machine the
// cost per byte is steadier than wall-clock throughput.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}
double mbps(uint64_t bytes, double s) { return s > 0 ? bytes / s / 1e6 : 0; }

struct DataSet {
  std::string name;
  std::vector<std::byte> bytes;  // whole pages
};

// The heap of a python3 process we start (and kill): a dict of strings and a
// list of floats, read through /proc/PID/mem.
DataSet python_heap(size_t max_bytes) {
  DataSet ds{"python3 heap", {}};
  int to_child[2], from_child[2];
  if (pipe(to_child) != 0 || pipe(from_child) != 0) return ds;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(to_child[0], 0);
    dup2(from_child[1], 1);
    close(to_child[1]);
    close(from_child[0]);
    execlp("python3", "python3", "-c",
           "import sys\n"
           "d = {i: ('v%d-' % i) * 4 for i in range(1500000)}\n"
           "l = [float(i) * 1.5 for i in range(4000000)]\n"
           "t = [(i, str(i)) for i in range(800000)]\n"
           "print('ready', flush=True)\n"
           "sys.stdin.read()\n",
           static_cast<char*>(nullptr));
    _exit(127);
  }
  close(to_child[0]);
  close(from_child[1]);
  char buf[16] = {};
  ssize_t n = read(from_child[0], buf, sizeof buf - 1);
  if (n > 0 && std::string(buf).rfind("ready", 0) == 0) {
    std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
    int mem = open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY);
    std::string line;
    while (std::getline(maps, line) && ds.bytes.size() < max_bytes) {
      std::istringstream in(line);
      std::string range, perms, off, dev, inode, path;
      in >> range >> perms >> off >> dev >> inode;
      std::getline(in, path);
      path.erase(0, path.find_first_not_of(' '));
      if (perms != "rw-p" || !(path.empty() || path == "[heap]")) continue;
      uint64_t start = std::stoull(range.substr(0, range.find('-')), nullptr, 16);
      uint64_t end = std::stoull(range.substr(range.find('-') + 1), nullptr, 16);
      size_t len = std::min<uint64_t>(end - start, max_bytes - ds.bytes.size());
      size_t at = ds.bytes.size();
      ds.bytes.resize(at + len);
      if (pread(mem, ds.bytes.data() + at, len, static_cast<off_t>(start)) != static_cast<ssize_t>(len)) ds.bytes.resize(at);
    }
    if (mem >= 0) close(mem);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  close(to_child[1]);
  close(from_child[0]);
  return ds;
}

DataSet random_pages(size_t bytes) {
  DataSet ds{"random", std::vector<std::byte>(bytes)};
  std::mt19937_64 rng(42);
  for (size_t i = 0; i < bytes; i += 8) {
    uint64_t v = rng();
    std::memcpy(ds.bytes.data() + i, &v, 8);
  }
  return ds;
}

// 95% zero pages; the others hold short repeated text.
DataSet mostly_zero(size_t bytes) {
  DataSet ds{"mostly zero", std::vector<std::byte>(bytes)};
  std::mt19937_64 rng(7);
  for (size_t p = 0; p < bytes; p += kPageSize) {
    if (rng() % 20 != 0) continue;
    std::string text = "page " + std::to_string(p) + " holds some text; ";
    for (size_t i = 0; i + text.size() <= kPageSize; i += text.size()) std::memcpy(ds.bytes.data() + p + i, text.data(), text.size());
  }
  return ds;
}

struct Limits {
  double memcpy_mbps, zstd_c_mbps, zstd_d_mbps, zstd_ratio;
  double zstd_c_cpu_mbps, zstd_d_cpu_mbps;  // per CPU second
};

Limits measure_limits(const DataSet& ds, int level) {
  Limits l{};
  std::vector<std::byte> dst(ds.bytes.size());
  std::memcpy(dst.data(), ds.bytes.data(), dst.size());  // fault it in first
  auto t = Clock::now();
  std::memcpy(dst.data(), ds.bytes.data(), dst.size());
  l.memcpy_mbps = mbps(dst.size(), seconds_since(t));

  // One thread, 1 MiB chunks: plain zstd at the writer's level.
  FrameCompressor c(level);
  FrameDecompressor d;
  const size_t chunk = 1 << 20;
  std::vector<std::vector<std::byte>> out((ds.bytes.size() + chunk - 1) / chunk);
  uint64_t compressed = 0;
  t = Clock::now();
  double cpu = cpu_seconds();
  for (size_t i = 0; i < out.size(); ++i) {
    auto part = std::span(ds.bytes).subspan(i * chunk, std::min(chunk, ds.bytes.size() - i * chunk));
    (void)c.compress(part, out[i]);
    compressed += out[i].size();
  }
  l.zstd_c_mbps = mbps(ds.bytes.size(), seconds_since(t));
  l.zstd_c_cpu_mbps = mbps(ds.bytes.size(), cpu_seconds() - cpu);
  l.zstd_ratio = static_cast<double>(ds.bytes.size()) / compressed;
  t = Clock::now();
  cpu = cpu_seconds();
  for (size_t i = 0; i < out.size(); ++i) {
    size_t len = std::min(chunk, ds.bytes.size() - i * chunk);
    FrameEntry e{0, static_cast<uint32_t>(out[i].size()), static_cast<uint32_t>(len / kPageSize), checksum64(out[i])};
    (void)d.decompress(out[i], e, std::span(dst).subspan(i * chunk, len), "bench", i);
  }
  l.zstd_d_mbps = mbps(ds.bytes.size(), seconds_since(t));
  l.zstd_d_cpu_mbps = mbps(ds.bytes.size(), cpu_seconds() - cpu);
  return l;
}

struct ImageResult {
  double write_mbps = 0, read_mbps = 0, ratio = 0, random_page_us = 0;
  double write_cpu_mbps = 0, read_cpu_mbps = 0;  // MB per CPU second
  bool ok = false;
};

constexpr uint64_t kBase = 0x7f0000000000;

ImageResult measure_image(const DataSet& ds, const fs::path& scratch, WriterOptions options, bool random_reads) {
  ImageResult r;
  fs::path dir = scratch / "img";
  fs::remove_all(dir);
  MemoryArea area;
  area.start = kBase;
  area.end = kBase + ds.bytes.size();
  area.prot = "rw-p";
  area.backing = "anon";
  auto t = Clock::now();
  double cpu = cpu_seconds();
  auto w = ImageWriter::create(dir, ImageKind::PreDump, std::nullopt, options);
  if (!w) return fprintf(stderr, "create: %s\n", w.error().message().c_str()), r;
  (*w)->set_areas({area});
  const size_t chunk = 1 << 20;
  for (size_t off = 0; off < ds.bytes.size(); off += chunk) {
    auto part = std::span<const std::byte>(ds.bytes).subspan(off, std::min(chunk, ds.bytes.size() - off));
    if (auto a = (*w)->add_pages(kBase + off, part); !a) return fprintf(stderr, "add: %s\n", a.error().message().c_str()), r;
  }
  auto info = (*w)->commit();
  if (!info) return fprintf(stderr, "commit: %s\n", info.error().message().c_str()), r;
  r.write_mbps = mbps(ds.bytes.size(), seconds_since(t));
  r.write_cpu_mbps = mbps(ds.bytes.size(), cpu_seconds() - cpu);
  r.ratio = static_cast<double>(ds.bytes.size()) / std::max<uint64_t>(1, info->bytes_compressed + 0);

  auto chain = ImageChain::open(dir);
  if (!chain) return fprintf(stderr, "open: %s\n", chain.error().message().c_str()), r;
  std::vector<std::byte> dst(ds.bytes.size());
  std::memset(dst.data(), 1, dst.size());
  t = Clock::now();
  cpu = cpu_seconds();
  auto rr = (*chain)->for_each_run([&](uint64_t addr, std::span<const std::byte> data, uint64_t zero) -> wpckpt::Result<void> {
    if (zero) std::memset(dst.data() + (addr - kBase), 0, zero * kPageSize);
    else std::memcpy(dst.data() + (addr - kBase), data.data(), data.size());
    return wpckpt::ok();
  });
  r.read_mbps = mbps(ds.bytes.size(), seconds_since(t));
  r.read_cpu_mbps = mbps(ds.bytes.size(), cpu_seconds() - cpu);
  if (!rr || std::memcmp(dst.data(), ds.bytes.data(), dst.size()) != 0) return fprintf(stderr, "read back differs\n"), r;

  if (random_reads) {
    // Cost of one page at a random address (a lazy-restore fault): one frame
    // decompression; the frame cache is defeated by the random order.
    std::mt19937_64 rng(1);
    std::vector<std::byte> page(kPageSize);
    const int n = 2000;
    cpu = cpu_seconds();
    for (int i = 0; i < n; ++i) (void)(*chain)->read(kBase + (rng() % (ds.bytes.size() / kPageSize)) * kPageSize, page);
    r.random_page_us = (cpu_seconds() - cpu) / n * 1e6;
  }
  r.ok = true;
  fs::remove_all(dir);
  return r;
}

// Best of three: the machine is shared, a slower run measured a neighbour.
ImageResult best_of_3(const DataSet& ds, const fs::path& scratch, const WriterOptions& options, bool random_reads) {
  ImageResult best = measure_image(ds, scratch, options, random_reads);
  for (int i = 0; i < 2; ++i) {
    ImageResult r = measure_image(ds, scratch, options, random_reads);
    best.ok = best.ok && r.ok;
    best.write_mbps = std::max(best.write_mbps, r.write_mbps);
    best.read_mbps = std::max(best.read_mbps, r.read_mbps);
    best.random_page_us = std::min(best.random_page_us, r.random_page_us);
    best.write_cpu_mbps = std::max(best.write_cpu_mbps, r.write_cpu_mbps);
    best.read_cpu_mbps = std::max(best.read_cpu_mbps, r.read_cpu_mbps);
  }
  return best;
}

Limits best_limits(const DataSet& ds, int level) {
  Limits best = measure_limits(ds, level);
  for (int i = 0; i < 2; ++i) {
    Limits l = measure_limits(ds, level);
    best.memcpy_mbps = std::max(best.memcpy_mbps, l.memcpy_mbps);
    best.zstd_c_mbps = std::max(best.zstd_c_mbps, l.zstd_c_mbps);
    best.zstd_d_mbps = std::max(best.zstd_d_mbps, l.zstd_d_mbps);
    best.zstd_c_cpu_mbps = std::max(best.zstd_c_cpu_mbps, l.zstd_c_cpu_mbps);
    best.zstd_d_cpu_mbps = std::max(best.zstd_d_cpu_mbps, l.zstd_d_cpu_mbps);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  size_t mib = argc > 1 ? std::stoul(argv[1]) : 256;
  fs::path scratch = fs::path(argc > 2 ? argv[2] : "/tmp") / ("image_bench." + std::to_string(getpid()));
  fs::create_directories(scratch);
  const size_t bytes = mib << 20;

  std::vector<DataSet> sets;
  sets.push_back(python_heap(bytes));
  sets.push_back(random_pages(bytes));
  sets.push_back(mostly_zero(bytes));

  std::printf("image_bench: %zu MiB per data set, %u cores, defaults: frame %u pages, zstd level %d\n\n", mib,
              std::thread::hardware_concurrency(), kDefaultFramePages, kDefaultCompressLevel);
  std::printf("%-13s %7s | %8s | %9s %9s %6s | %9s %9s %6s | %6s %6s | %10s %10s %10s %10s\n", "data", "MiB", "memcpy",
              "zstd1t-c", "zstd1t-d", "ratio", "img-write", "img-read", "ratio", "w/z1t", "r/z1t", "z1t-c/cs", "z1t-d/cs",
              "img-w/cs", "img-r/cs");
  for (const DataSet& ds : sets) {
    if (ds.bytes.empty()) {
      std::printf("%-13s (could not read)\n", ds.name.c_str());
      continue;
    }
    Limits l = best_limits(ds, kDefaultCompressLevel);
    ImageResult r = best_of_3(ds, scratch, {}, false);
    std::printf("%-13s %7zu | %8.0f | %9.0f %9.0f %6.2f | %9.0f %9.0f %6.2f | %6.2f %6.2f | %10.0f %10.0f %10.0f %10.0f%s\n",
                ds.name.c_str(), ds.bytes.size() >> 20, l.memcpy_mbps, l.zstd_c_mbps, l.zstd_d_mbps, l.zstd_ratio,
                r.write_mbps, r.read_mbps, r.ratio, r.write_mbps / l.zstd_c_mbps, r.read_mbps / l.zstd_d_mbps,
                l.zstd_c_cpu_mbps, l.zstd_d_cpu_mbps, r.write_cpu_mbps, r.read_cpu_mbps, r.ok ? "" : "  FAILED");
  }
  std::printf("\n(best of 3; MB/s of raw pages, wall clock; MB/cs = MB per CPU second of all threads; zstd1t = one thread, 1 MiB chunks, same level; img-write includes fsync and\n"
              " rename; img-read = ImageChain::for_each_run into memory)\n");

  const DataSet& real = sets[0].bytes.empty() ? sets[1] : sets[0];
  std::printf("\nframe size sweep on %s (level %d):\n", real.name.c_str(), kDefaultCompressLevel);
  std::printf("%12s %10s %10s %11s %11s %7s %18s\n", "frame", "write MB/s", "read MB/s", "write MB/cs", "read MB/cs",
              "ratio", "random page cpu-µs");
  for (uint32_t fp : {1u, 4u, 8u, 16u, 32u, 64u, 256u}) {
    WriterOptions o;
    o.frame_pages = fp;
    ImageResult r = best_of_3(real, scratch, o, true);
    std::printf("%6u pages %10.0f %10.0f %11.0f %11.0f %7.2f %18.1f%s\n", fp, r.write_mbps, r.read_mbps, r.write_cpu_mbps,
                r.read_cpu_mbps, r.ratio, r.random_page_us, r.ok ? "" : "  FAILED");
  }
  std::printf("\nlevel sweep on %s (frame %u pages):\n", real.name.c_str(), kDefaultFramePages);
  std::printf("%8s %10s %10s %11s %11s %7s\n", "level", "write MB/s", "read MB/s", "write MB/cs", "read MB/cs", "ratio");
  for (int level : {-5, -1, 1, 2, 3, 6}) {
    WriterOptions o;
    o.compress_level = level;
    ImageResult r = best_of_3(real, scratch, o, false);
    std::printf("%8d %10.0f %10.0f %11.0f %11.0f %7.2f%s\n", level, r.write_mbps, r.read_mbps, r.write_cpu_mbps,
                r.read_cpu_mbps, r.ratio, r.ok ? "" : "  FAILED");
  }
  fs::remove_all(scratch);
  return 0;
}
