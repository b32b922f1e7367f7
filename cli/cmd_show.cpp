// wpckpt show: what an image (and its chain) holds — kind, the parent chain,
// areas, page counts (stored here / in a parent / zero), bytes and ratio.
#include <cinttypes>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/tree_images.hpp"
#include "dump-format/image.hpp"

namespace wpckpt::cli {
namespace {

using image::ImageChain;
using image::kPageSize;
using image::Manifest;

struct ShowOptions {
  bool json = false;
  std::string images_dir;
  int pid = 0;
};

nlohmann::json tree_json(const state::TreeState& tree) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& m : tree.processes)
    out.push_back({{"pid", m.pid}, {"ppid", m.ppid}, {"pgid", m.pgid}, {"sid", m.sid}, {"comm", m.comm},
                   {"zombie", m.zombie}});
  return out;
}

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
  return buf;
}

std::string human_bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

double ratio(uint64_t raw, uint64_t compressed) { return compressed ? static_cast<double>(raw) / compressed : 0.0; }

nlohmann::json image_json(const ImageChain& chain, size_t i) {
  const Manifest& m = chain.manifest(i);
  const Manifest::Stats& s = m.stats;
  nlohmann::json j{{"dir", chain.dirs()[i].string()},
                   {"kind", image::kind_name(m.kind)},
                   {"format_version", m.format_version},
                   {"created", m.created},
                   {"parent", m.parent ? nlohmann::json(*m.parent) : nlohmann::json(nullptr)},
                   {"pages_stored", s.pages_stored},
                   {"pages_zero", s.pages_zero},
                   {"pages_fresh", s.pages_fresh},
                   {"bytes_raw", s.bytes_raw},
                   {"bytes_compressed", s.bytes_compressed},
                   {"ratio", ratio(s.bytes_raw, s.bytes_compressed)},
                   {"frames", s.frames},
                   {"frame_pages", s.frame_pages},
                   {"compress_level", s.compress_level}};
  if (m.parent_digest) j["parent_digest"] = *m.parent_digest;
  return j;
}

int show(const ShowOptions& opts) {
  auto which = process_image(opts.images_dir, opts.pid);
  if (!which) return report_error(which.error(), opts.json);
  auto opened = ImageChain::open(which->dir);
  if (!opened) return report_error(opened.error(), opts.json);
  const ImageChain& chain = **opened;
  const Manifest& m = chain.manifest();
  image::ChainSummary sum = chain.summary();

  if (opts.json) {
    nlohmann::json images = nlohmann::json::array(), areas = nlohmann::json::array();
    for (size_t i = 0; i < chain.dirs().size(); ++i) images.push_back(image_json(chain, i));
    for (const image::MemoryArea& a : m.areas)
      areas.push_back({{"start", hex(a.start)},
                       {"end", hex(a.end)},
                       {"pages", (a.end - a.start) / kPageSize},
                       {"prot", a.prot},
                       {"backing", a.backing},
                       {"path", a.path},
                       {"file_offset", a.file_offset},
                       {"contents", a.contents},
                       {"attributes", a.attributes}});
    nlohmann::json doc = {{"ok", true},
                {"dir", chain.dirs()[0].string()},
                {"kind", image::kind_name(m.kind)},
                {"format_version", m.format_version},
                {"created", m.created},
                {"chain", images},
                {"areas", areas},
                {"pages",
                 {{"covered", sum.pages_covered},
                  {"stored", sum.pages_stored},
                  {"in_parent", sum.pages_in_parent},
                  {"zero", sum.pages_zero}}},
                {"bytes",
                 {{"raw", m.stats.bytes_raw},
                  {"compressed", m.stats.bytes_compressed},
                  {"ratio", ratio(m.stats.bytes_raw, m.stats.bytes_compressed)}}},
                {"files", m.files},
                {"metadata", m.metadata}};
    if (which->tree) {
      doc["tree"] = tree_json(*which->tree);
      doc["pid"] = which->pid;
    }
    print_json(doc);
    return kExitOk;
  }

  if (which->tree) {
    std::cout << "tree:    " << which->tree->processes.size() << " processes (this is " << which->pid
              << "'s image; --pid for another's)\n"
              << tree_lines(*which->tree);
  }
  std::cout << "image:   " << chain.dirs()[0].string() << "\n"
            << "kind:    " << image::kind_name(m.kind) << " (format " << m.format_version << ", created " << m.created
            << ")\n"
            << "chain:   " << chain.dirs().size() << " image" << (chain.dirs().size() == 1 ? "" : "s")
            << " (newest first)\n";
  for (size_t i = 0; i < chain.dirs().size(); ++i) {
    const Manifest::Stats& s = chain.manifest(i).stats;
    std::printf("  %-3zu %-8s %10" PRIu64 " stored %10" PRIu64 " zero %10s -> %-10s ratio %5.2f  %s\n", i,
                image::kind_name(chain.manifest(i).kind), s.pages_stored, s.pages_zero,
                human_bytes(s.bytes_raw).c_str(), human_bytes(s.bytes_compressed).c_str(),
                ratio(s.bytes_raw, s.bytes_compressed), chain.dirs()[i].string().c_str());
  }
  std::fflush(stdout);
  std::cout << "areas:   " << m.areas.size() << "\n";
  for (const image::MemoryArea& a : m.areas) {
    std::printf("  %16" PRIx64 "-%-16" PRIx64 " %-4s %-6s %9" PRIu64 " pages%s %s\n", a.start, a.end, a.prot.c_str(),
                a.backing.c_str(), (a.end - a.start) / kPageSize, a.contents ? "" : " (no contents)", a.path.c_str());
  }
  std::fflush(stdout);
  std::cout << "pages:   " << sum.pages_covered << " covered: " << sum.pages_stored << " stored here, "
            << sum.pages_in_parent << " in parents, " << sum.pages_zero << " zero\n";
  char line[160];
  std::snprintf(line, sizeof line, "bytes:   %s raw, %s compressed, ratio %.2f (this image's stored pages)\n",
                human_bytes(m.stats.bytes_raw).c_str(), human_bytes(m.stats.bytes_compressed).c_str(),
                ratio(m.stats.bytes_raw, m.stats.bytes_compressed));
  std::cout << line;
  if (!m.files.empty()) {
    std::cout << "files:  ";
    for (const std::string& f : m.files) std::cout << " " << f;
    std::cout << "\n";
  }
  // A dump's downtime figures, under CRIU's names (lib/dump/dump.hpp).
  if (auto d = m.metadata.find("dump"); d != m.metadata.end() && d->is_object()) {
    std::cout << "dump:   ";
    for (const auto& [key, value] : d->items()) std::cout << " " << key << "=" << value.dump();
    std::cout << "\n";
  }
  return kExitOk;
}

}  // namespace

void add_show_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<ShowOptions>();
  CLI::App* sub = app.add_subcommand("show", "Show what an image (and its chain) holds");
  sub->add_option("-D,--images-dir", opts->images_dir, "Image directory")->required();
  sub->add_option("--pid", opts->pid, "The process of a tree's image (default: its root)");
  sub->add_flag("--json", opts->json, "Print a JSON document");
  sub->callback([opts, &exit_code] { exit_code = show(*opts); });
}

}  // namespace wpckpt::cli
