// process.json is untrusted input: every field is type-checked, and an error
// names the field; what is written reads back the same.
#include "lib/state/process_state.hpp"

#include <gtest/gtest.h>

#include <string>

namespace wpckpt::state {
namespace {

Result<ProcessState> parse_text(const std::string& text) {
  return parse(std::as_bytes(std::span(text.data(), text.size())));
}

ProcessState sample() {
  ProcessState s;
  s.pid = 4242;
  s.comm = "sample";
  ThreadState t;
  t.tid = 4242;
  t.is_main = true;
  t.regs.rip = 0x401000;
  t.xsave = {1, 2, 3};
  t.pending = {{9, 8}};
  s.threads.push_back(t);
  Mapping m;
  m.start = 0x1000;
  m.end = 0x3000;
  m.kind = tracker::MemoryKind::File;
  m.file = FileIdentity{"/bin/true", 1, 2, 3, -4, false};
  m.guards = {{0x1000, 0x2000}};
  s.mappings.push_back(m);
  FdState f;
  f.fd = 3;
  f.kind = FdKind::Eventfd;
  f.details["count"] = 5;
  s.fds.push_back(f);
  s.tracking["uffd_fd"] = 7;
  s.itimers.push_back({0, 1, 250000, 0, 25000});
  PosixTimer p;
  p.id = 7;
  p.clock = -6;  // a CPU clock
  p.signo = 36;
  p.sigev_value = 0xffffffff12345678;
  p.notify = 4;
  p.notify_tid = 4243;
  p.value_nsec = 5;
  s.posix_timers.push_back(p);
  return s;
}

TEST(ProcessState, RoundTripsEveryKindOfField) {
  auto text = serialize(sample());
  ASSERT_TRUE(text.ok());
  auto back = parse_text(*text);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(back->pid, 4242);
  EXPECT_EQ(back->threads.at(0).regs.rip, 0x401000u);
  EXPECT_EQ(back->threads.at(0).xsave, (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(back->threads.at(0).pending.at(0), (std::vector<uint8_t>{9, 8}));
  EXPECT_EQ(back->mappings.at(0).file->mtime_ns, -4);
  EXPECT_EQ(back->mappings.at(0).guards.at(0).second, 0x2000u);
  EXPECT_EQ(back->fds.at(0).details["count"], 5);
  EXPECT_EQ(back->itimers.at(0).value_usec, 250000);
  EXPECT_EQ(back->itimers.at(0).interval_usec, 25000);
  EXPECT_EQ(back->posix_timers.at(0).clock, -6);
  EXPECT_EQ(back->posix_timers.at(0).sigev_value, 0xffffffff12345678u);
  EXPECT_EQ(back->posix_timers.at(0).notify_tid, 4243);
  EXPECT_EQ(*serialize(*back), *text);
}

// An image written before timers were saved has neither field: it parses, with none.
// serialize() writes the text straight from the field lists (json_text.hpp):
// the same document as the JSON writer's, escapes and all.
TEST(ProcessState, TheWrittenTextIsTheDocumentOfTheFields) {
  ProcessState s = sample();
  s.comm = "tab\there \"quoted\" back\\slash na\u00efve \x7f";
  s.mappings.at(0).name = "[anon:\u00e9l\u00e8ve]";
  s.mappings.at(0).vm_flags = {"rd", "wr", "mr"};
  s.cwd = "/tmp/\x01control";
  auto text = serialize(s);
  ASSERT_TRUE(text.ok()) << text.error().message();
  nlohmann::json written = nlohmann::json::parse(*text, nullptr, false);
  ASSERT_FALSE(written.is_discarded()) << *text;
  EXPECT_EQ(written, to_json(s));
}

TEST(ProcessState, AnImageWithoutTimerFieldsHasNoTimers) {
  nlohmann::json doc = to_json(sample());
  doc.erase("itimers");
  doc.erase("posix_timers");
  auto back = from_json(doc);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_TRUE(back->itimers.empty());
  EXPECT_TRUE(back->posix_timers.empty());
}

// Replaces `from` (which must occur) by `to` in the serialized sample and parses it.
Result<ProcessState> parse_changed(const std::string& from, const std::string& to) {
  std::string text = *serialize(sample());
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at == std::string::npos) return make_error(0, "test");
  text.replace(at, from.size(), to);
  return parse_text(text);
}

void expect_error(const Result<ProcessState>& r, const std::string& needle) {
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find(needle), std::string::npos) << r.error().message();
  EXPECT_FALSE(r.error().hint.empty());
}

TEST(ProcessState, AFieldOfTheWrongTypeIsNamed) {
  expect_error(parse_changed("\"pid\":4242", "\"pid\":\"4242\""), "field 'pid' must be an integer, is a string");
  expect_error(parse_changed("\"rip\":4198400", "\"rip\":-1"), "field 'threads[0].regs.rip' is -1, out of range");
  expect_error(parse_changed("\"rip\":4198400", "\"rip\":1.5"), "field 'threads[0].regs.rip' must be an integer");
  expect_error(parse_changed("\"is_main\":true", "\"is_main\":1"), "field 'threads[0].is_main' must be true or false");
  expect_error(parse_changed("\"xsave\":\"010203\"", "\"xsave\":\"0102z3\""), "field 'threads[0].xsave' is not lowercase hex");
  expect_error(parse_changed("\"fd\":3", "\"fd\":4294967296"), "field 'fds[0].fd' is 4294967296, out of range");
  expect_error(parse_changed("\"kind\":\"eventfd\"", "\"kind\":\"socket\""),
               "field 'fds[0].kind' is 'socket', not a kind of descriptor this wpckpt knows");
  expect_error(parse_changed("\"guards\":[[4096,8192]]", "\"guards\":[[4096]]"), "field 'mappings[0].guards[0]' must be an array of two");
  expect_error(parse_changed("\"mappings\":[", "\"mappings\":\"x\",\"ignored\":["), "field 'mappings' must be an array, is a string");
  expect_error(parse_changed("\"deleted\":false", "\"deleted\":\"no\""), "field 'mappings[0].file.deleted'");
}

TEST(ProcessState, MissingRegistersAndNonObjectsAreRefused) {
  expect_error(parse_changed("\"rip\":4198400,", ""), "field 'threads[0].regs.rip' is missing");
  expect_error(parse_text("[1, 2, 3]"), "must be an object, is an array");
  expect_error(parse_text("{\"threads\": [7]}"), "field 'threads[0]' must be an object, is an unsigned integer");
  auto bad = parse_text("{not json");
  ASSERT_FALSE(bad.ok());
}

TEST(ProcessState, ANewerStateVersionIsRefusedWithAHint) {
  auto r = parse_changed("\"state_version\":1", "\"state_version\":99");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("state_version 99"), std::string::npos);
  EXPECT_NE(r.error().hint.find("newer wpckpt"), std::string::npos);
}

TEST(ProcessState, ANameThatIsNotUtf8CannotBeSerializedAndSaysSo) {
  ProcessState s = sample();
  s.comm = std::string("bad\xff\xfe", 5);
  auto r = serialize(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().err, EILSEQ);
  EXPECT_NE(r.error().hint.find("UTF-8"), std::string::npos);
}

}  // namespace
}  // namespace wpckpt::state
