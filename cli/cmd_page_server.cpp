// wpckpt page-server: receives images from `pre-dump`/`dump --page-server`
// into -D (lib/net/page_server.hpp), one connection at a time, until a dump
// (the end of a chain) has arrived; --keep-serving: until stopped. With
// --restore it waits instead for a migration to ask for the restore of the
// dump it sent, restores it (--lazy: lazily) as `wpckpt restore` does and
// stays the restored process's parent, ending with its status.
// --lazy: serves the chains in -D to restores on other hosts (`restore
// --page-server`, lib/net/chain_service.hpp), each on a thread of its own,
// and exits once one of them needs no more pages (--keep-serving: never).
// --new-secret writes a shared secret (to --secret-file) and exits.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/page_server_options.hpp"
#include "cli/restore_run.hpp"
#include "lib/base/log.hpp"
#include "lib/net/page_server.hpp"
#include "lib/net/secret_file.hpp"

namespace wpckpt::cli {
namespace {

struct ServeOptions {
  std::string images_dir;
  PageServerOptions net;
  bool keep_serving = false, json = false, new_secret = false;
  bool restore = false, lazy = false;
};

// One line per event (JSON Lines): a script reads them as they come.
void print_event(const nlohmann::json& doc) { std::printf("%s\n", doc.dump().c_str()); }

// A restore on another host reading a chain of ours (--lazy).
void report_fetch(const net::FetchEvent& f, bool json) {
  if (json) {
    nlohmann::json doc = {{"event", f.ended ? "served" : "serving"}, {"peer", f.peer}, {"image", f.served.image}};
    if (f.ended) {
      doc["complete"] = f.served.complete;
      doc["bytes"] = f.served.bytes_sent;
      doc["reads"] = f.served.reads;
      doc["seconds"] = f.served.seconds;
      if (f.error) doc["error"] = f.error->message();
    }
    print_event(doc);
  } else if (!f.ended) {
    std::printf("serving %s to %s\n", f.served.image.c_str(), f.peer.c_str());
  } else if (f.error) {
    std::fprintf(stderr, "wpckpt: page server: serving %s to %s: %s\n", f.served.image.c_str(), f.peer.c_str(),
                 f.error->message().c_str());
  } else {
    std::printf("served %s to %s: %llu bytes of pages in %llu reads, %.3f s%s\n", f.served.image.c_str(),
                f.peer.c_str(), static_cast<unsigned long long>(f.served.bytes_sent),
                static_cast<unsigned long long>(f.served.reads), f.served.seconds,
                f.served.complete ? ", all pages in" : "");
  }
  std::fflush(stdout);
}

int new_secret(const ServeOptions& opts) {
  std::filesystem::path file = opts.net.secret_file.empty() ? default_secret_file() : opts.net.secret_file;
  std::error_code ec;
  if (file.has_parent_path() && !std::filesystem::exists(file.parent_path(), ec)) {
    std::filesystem::create_directories(file.parent_path(), ec);
    std::filesystem::permissions(file.parent_path(), std::filesystem::perms::owner_all, ec);
  }
  if (auto r = net::create_secret(file); !r) return report_error(r.error(), opts.json);
  if (opts.json) print_json({{"secret_file", file.string()}});
  else std::printf("wrote a new secret to %s: copy it (mode 0600) to the other host\n", file.c_str());
  return kExitOk;
}

// A migration's last step: restore the dump it sent, tell it when the
// process runs, then be `wpckpt restore` for it.
int restore_for(net::RestoreAsk& ask, const ServeOptions& opts) {
  RestoreOptions ro;
  ro.images_dir = ask.dir().string();
  ro.lazy = opts.lazy;
  ro.json = opts.json;
  ro.json_one_line = true;
  bool answered = false;
  RestoreHooks hooks;
  hooks.on_running = [&](const restore::RestoreReport& r) {
    answered = true;
    if (auto told = ask.running(r.pid); !told)
      log::warn("the migration did not hear that pid {} runs: {}", r.pid, told.error().message());
  };
  hooks.on_failure = [&](const Error& e) {
    if (!answered) ask.failed(e);
    answered = true;
  };
  return run_restore(ro, hooks);
}

int serve(const ServeOptions& opts) {
  if (opts.new_secret) return new_secret(opts);
  if (opts.images_dir.empty()) return report_usage("page-server needs -D DIR", opts.json);
  std::string secret = opts.net.secret_file.empty() ? default_secret_file() : opts.net.secret_file;
  auto server = net::PageServer::open(opts.images_dir, net::Endpoint{opts.net.address, opts.net.port}, secret,
                                      opts.restore, opts.lazy);
  if (!server) return report_error(server.error(), opts.json);
  if (opts.json) print_event({{"event", "listening"}, {"port", server->port()}, {"images_dir", opts.images_dir}});
  else std::printf("page server: listening on port %u, images into %s\n", server->port(), opts.images_dir.c_str());
  std::fflush(stdout);
  for (;;) {
    auto incoming = server->receive_one();
    if (incoming && incoming->restore) return restore_for(*incoming->restore, opts);
    if (incoming && incoming->fetch) {
      const net::FetchEvent& f = *incoming->fetch;
      report_fetch(f, opts.json);
      // Done: the restore there needs no more pages.
      if (f.ended && f.served.complete && !opts.keep_serving && !opts.restore) return kExitOk;
      continue;
    }
    Result<net::ReceivedImage> got = incoming ? Result<net::ReceivedImage>(*incoming->image)
                                              : Result<net::ReceivedImage>(std::move(incoming).error());
    if (!got) {
      // One connection's failure; nothing of it was kept. The server goes on.
      const Error& e = got.error();
      if (opts.json) print_event({{"event", "refused"}, {"error", e.message()}, {"hint", e.hint}});
      else std::fprintf(stderr, "wpckpt: page server: %s\n", e.message().c_str());
      std::fflush(stdout);
      continue;
    }
    if (opts.json)
      print_event({{"event", "image"}, {"dir", got->dir.string()}, {"kind", got->kind}, {"peer", got->peer},
                  {"bytes", got->bytes}, {"seconds", got->seconds}});
    else
      std::printf("received %s %s from %s: %llu bytes in %.3f s, checked\n", got->kind.c_str(), got->dir.c_str(),
                  got->peer.c_str(), static_cast<unsigned long long>(got->bytes), got->seconds);
    std::fflush(stdout);
    if (got->kind == "dump" && !opts.keep_serving && !opts.restore && !opts.lazy) return kExitOk;
  }
}

}  // namespace

void add_page_server_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<ServeOptions>();
  CLI::App* sub = app.add_subcommand("page-server", "Receive images sent with --page-server over authenticated TLS");
  sub->add_option("-D,--images-dir", opts->images_dir, "Directory the images are stored in (created 0700 if missing)");
  add_page_server_options(sub, opts->net, PageServerRole::Listen);
  sub->add_flag("--keep-serving", opts->keep_serving, "Do not exit after receiving a dump");
  sub->add_flag("--restore", opts->restore,
                "Restore the dump a `wpckpt migrate` sent when it asks, and supervise the process as `restore` does");
  sub->add_flag("--lazy,--lazy-pages", opts->lazy,
                "Serve the chains in -D to `restore --lazy --page-server` on other hosts (until one has all its "
                "pages); with --restore, restore the migrated dump lazily");
  sub->add_flag("--new-secret", opts->new_secret, "Write a new shared secret to --secret-file (or the default one) and exit");
  sub->add_flag("--json", opts->json, "Print one JSON document per event");
  sub->callback([opts, &exit_code] { exit_code = serve(*opts); });
}

}  // namespace wpckpt::cli
