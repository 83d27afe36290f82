#include "eval/suite.h"

#include <fstream>

#include "common/error.h"
#include "common/interrupted.h"
#include "common/text.h"
#include "eval/chat_spec.h"
#include "eval/jailbreak.h"
#include "eval/mmlu.h"
#include "eval/moderation.h"
#include "eval/mt_bench.h"
#include "eval/provenance.h"

namespace chatmill::eval {

namespace fs = std::filesystem;

namespace {

void write_json(const fs::path& f, const nlohmann::ordered_json& j) {
  fs::create_directories(f.parent_path());
  std::ofstream out(f);
  CHATMILL_CHECK(out, "cannot write ", f);
  out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

void write_jsonl(const fs::path& f, const std::vector<nlohmann::ordered_json>& rows) {
  fs::create_directories(f.parent_path());
  std::ofstream out(f);
  CHATMILL_CHECK(out, "cannot write ", f);
  for (const auto& r : rows) out << r.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

}  // namespace

EvalSuite read_eval_suite(YamlObject& y) {
  EvalSuite s;
  for (const char* k : {"mmlu", "mt_bench", "moderation", "jailbreak"}) (void)y.object(k);  // listed in unknown-key errors
  y.read("template", s.template_name);
  y.read("batch_size", s.batch_size);
  y.read("every_steps", s.every_steps);
  if (y.has("mmlu")) {
    YamlObject o = y.object("mmlu");
    MmluBench b;
    o.read("data", b.data, true);
    o.read("shots", b.shots);
    o.read("variant", b.variant);
    o.read("max_length", b.max_length);
    o.read("batch_size", b.batch_size);
    o.check_unknown();
    s.mmlu = b;
  }
  if (y.has("mt_bench")) {
    YamlObject o = y.object("mt_bench");
    MtBenchBench b;
    o.read("questions", b.questions, true);
    o.read("judge_prompts", b.judge_prompts, true);
    o.read("reference", b.reference);
    o.read("judge", b.judge, true);
    o.read("compare", b.compare);
    o.read("max_new_tokens", b.max_new_tokens);
    o.read("judge_max_tokens", b.judge_max_tokens);
    o.read("seed", b.seed);
    o.check_unknown();
    s.mt_bench = b;
  }
  if (y.has("moderation")) {
    YamlObject o = y.object("moderation");
    ModerationBench b;
    o.read("set", b.set, true);
    o.read("prompt", b.prompt, true);
    o.read("shots_file", b.shots_file);
    std::vector<std::string> shots;
    o.read("shots", shots);
    if (!shots.empty()) {
      b.shots.clear();
      for (const auto& k : shots) {
        try {
          b.shots.push_back(std::stoll(k));
        } catch (const std::exception&) {
          o.errors().add(o.where("shots") + ": '" + k + "' is not a number of shots");
        }
      }
    }
    o.read("max_tokens", b.max_tokens);
    o.check_unknown();
    for (int64_t k : b.shots)
      if (k > 0 && b.shots_file.empty()) o.errors().add(o.where("shots_file") + ": needed for shots > 0");
    s.moderation = b;
  }
  if (y.has("jailbreak")) {
    YamlObject o = y.object("jailbreak");
    JailbreakBench b;
    o.read("set", b.set, true);
    o.read("moderation_prompt", b.moderation_prompt, true);
    o.read("moderator", b.moderator, true);
    o.read("max_tokens", b.max_tokens);
    o.check_unknown();
    s.jailbreak = b;
  }
  y.check_unknown();
  if (s.batch_size < 1) y.errors().add(y.where("batch_size") + ": must be at least 1");
  return s;
}

SweepConfig load_sweep_config(const std::string& file, const std::vector<std::string>& overrides) {
  auto errors = std::make_shared<ConfigErrors>();
  YamlObject root(load_yaml(file, overrides), "", file, errors);
  SweepConfig c;
  root.read("checkpoints", c.checkpoints, true);
  root.read("output_dir", c.output_dir);
  root.read("dtype", c.dtype);
  root.read("device", c.device);
  root.read("tokenizer", c.tokenizer);
  root.read("threads", c.threads);
  root.read("title", c.title);
  YamlObject e = root.object("eval");
  c.suite = read_eval_suite(e);
  root.check_unknown();
  if (c.suite.empty()) errors->add(root.where("eval") + ": no benchmark (mmlu, mt_bench, moderation, jailbreak)");
  errors->throw_if_any(file);
  return c;
}

nlohmann::ordered_json eval_suite_json(const EvalSuite& s) {
  nlohmann::ordered_json j = {{"template", s.template_name}, {"batch_size", s.batch_size}, {"every_steps", s.every_steps}};
  if (s.mmlu)
    j["mmlu"] = {{"data", s.mmlu->data}, {"shots", s.mmlu->shots}, {"variant", s.mmlu->variant},
                 {"max_length", s.mmlu->max_length}, {"batch_size", s.mmlu->batch_size}};
  if (s.mt_bench)
    j["mt_bench"] = {{"questions", s.mt_bench->questions}, {"judge_prompts", s.mt_bench->judge_prompts},
                     {"reference", s.mt_bench->reference}, {"judge", s.mt_bench->judge}, {"compare", s.mt_bench->compare},
                     {"max_new_tokens", s.mt_bench->max_new_tokens}, {"judge_max_tokens", s.mt_bench->judge_max_tokens},
                     {"seed", s.mt_bench->seed}};
  if (s.moderation)
    j["moderation"] = {{"set", s.moderation->set}, {"prompt", s.moderation->prompt}, {"shots_file", s.moderation->shots_file},
                       {"shots", s.moderation->shots}, {"max_tokens", s.moderation->max_tokens}};
  if (s.jailbreak)
    j["jailbreak"] = {{"set", s.jailbreak->set}, {"moderation_prompt", s.jailbreak->moderation_prompt},
                      {"moderator", s.jailbreak->moderator}, {"max_tokens", s.jailbreak->max_tokens}};
  return j;
}

namespace {

void stamp(nlohmann::ordered_json& summary, const RunInfo& info, std::vector<fs::path> files, nlohmann::ordered_json settings) {
  files.erase(std::remove_if(files.begin(), files.end(), [](const fs::path& p) { return p.empty(); }), files.end());
  summary["provenance"] = provenance(info.model_dir, files, info.model_sha256);
  summary["provenance"]["model_name"] = info.model_name;
  summary["settings"] = std::move(settings);
  summary["settings"]["template"] = info.template_name;
}

// The chat model of `spec`, loaded into `owner`; "self" is the model under test itself (it judges or moderates
// its own answers: a smoke test of the pipeline, never a real score).
// A judge or moderator other than the model under test, kept for the benchmark's run.
struct OtherChat {
  std::unique_ptr<LoadedChat> loaded;
  std::unique_ptr<ChatModel> stoppable;  // `loaded`, asking `stop` between slices of requests
};

// "self": the model under test (whose own generation polls the stop); otherwise the spec's model, stoppable.
ChatModel& chat_or_self(const std::string& spec, const std::string& where, ChatModel& self, OtherChat& owner,
                        const std::function<bool()>& stop) {
  if (spec == "self") return self;
  owner.loaded = std::make_unique<LoadedChat>(parse_chat_spec(spec, where));
  if (!stop) return owner.loaded->get();
  owner.stoppable = make_stoppable_chat(owner.loaded->get(), stop);
  return *owner.stoppable;
}

}  // namespace

nlohmann::ordered_json run_mmlu(const model::Model& m, const model::Tokenizer& tok, const MmluBench& b,
                                const fs::path& out_json, const RunInfo& info, const std::function<bool()>& stop) {
  MmluData data = load_mmlu(b.data);
  MmluOptions o;
  o.shots = b.shots;
  o.variant = parse_mmlu_variant(b.variant);
  o.max_length = b.max_length;
  o.batch_size = b.batch_size;
  o.stop = stop;
  auto r = evaluate_mmlu(m, tok, data, o);
  stamp(r.summary, info, data.files, {{"shots", b.shots}, {"variant", b.variant}, {"max_length", b.max_length}});
  write_mmlu_results(r, out_json);
  return r.summary;
}

nlohmann::ordered_json run_mt_bench(ChatModel& model, const MtBenchBench& b, const fs::path& dir, const RunInfo& info,
                                    const std::function<bool()>& stop) {
  JudgeInputs in;
  in.questions = load_mt_questions(b.questions);
  in.prompts = load_judge_prompts(b.judge_prompts);
  if (!b.reference.empty()) in.references = load_references(b.reference);
  in.judge_max_tokens = b.judge_max_tokens;
  OtherChat loaded;  // a bad judge spec fails here, before any generation
  ChatModel& judge_model = chat_or_self(b.judge, "mt_bench.judge", model, loaded, stop);
  const fs::path answers_file = dir / "answers" / (info.model_name + ".jsonl");
  // Answers are resumable; a file made by other weights under the same name must not be taken for this model's.
  const fs::path stamp_file = dir / "answers" / (info.model_name + ".model_sha256");
  if (fs::exists(answers_file)) {
    std::ifstream in(stamp_file);
    std::string made_by;
    std::getline(in, made_by);
    CHATMILL_CHECK(made_by == info.model_sha256, "MT-Bench answers ", answers_file.string(), " were made by weights with hash '",
                   made_by, "', not this model's '", info.model_sha256, "': delete the file or use another output folder");
  } else {
    fs::create_directories(stamp_file.parent_path());
    std::ofstream(stamp_file) << info.model_sha256 << "\n";
  }
  AnswerOptions ao;
  ao.model_id = info.model_name;
  ao.max_new_tokens = b.max_new_tokens;
  ao.seed = b.seed;
  const int64_t made = generate_mt_answers(model, in.questions, ao, answers_file);
  auto answers = load_model_answers(answers_file);
  check_answers_cover(in.questions, answers, answers_file.string());
  JudgmentCache cache(dir / "judgments_cache.jsonl");
  fs::remove(dir / "judgments.jsonl");  // this run's judgments; the cache keeps every run's
  nlohmann::ordered_json r;
  if (b.compare.empty()) {
    r = judge_single(in, answers, judge_model, cache, dir / "judgments.jsonl");
  } else {
    auto other = load_model_answers(b.compare);
    check_answers_cover(in.questions, other, b.compare);
    r = judge_pairwise(in, answers, other, judge_model, cache, dir / "judgments.jsonl");
  }
  r["answers_generated"] = made;
  stamp(r, info, {b.questions, b.judge_prompts, b.reference, b.compare},
        {{"max_new_tokens", b.max_new_tokens}, {"seed", b.seed}, {"judge", judge_model.name()}, {"judge_temperature", 0.0},
         {"judge_max_tokens", b.judge_max_tokens}});
  write_json(dir / "results.json", r);
  return r;
}

nlohmann::ordered_json run_moderation(ChatModel& model, const ModerationBench& b, const fs::path& dir, const RunInfo& info) {
  auto items = load_moderation_items(b.set);
  std::vector<ModerationItem> pool;
  if (!b.shots_file.empty()) pool = load_moderation_items(b.shots_file);
  const std::string prompt = read_text_file(b.prompt, "moderation prompt");
  nlohmann::ordered_json runs = nlohmann::ordered_json::object();
  for (int64_t k : b.shots) {
    CHATMILL_CHECK(k >= 0 && k <= static_cast<int64_t>(pool.size()), "moderation: ", k, " shots asked, the shots file '",
                   b.shots_file, "' has ", pool.size());
    ModerationOptions o;
    o.prompt_text = prompt;
    o.shots.assign(pool.begin(), pool.begin() + k);
    o.max_tokens = b.max_tokens;
    auto r = evaluate_moderation(model, items, o);
    stamp(r.summary, info, {b.set, b.prompt, b.shots_file}, {{"shots", k}, {"max_tokens", b.max_tokens}});
    const fs::path sub = dir / (std::to_string(k) + "-shot");
    write_json(sub / "results.json", r.summary);
    write_jsonl(sub / "predictions.jsonl", r.predictions);
    runs[std::to_string(k) + "-shot"] = r.summary;
    CHATMILL_CHECK(r.summary["failed_requests"].get<int64_t>() == 0, r.summary["failed_requests"].get<int64_t>(),
                   " moderation requests failed; see ", (sub / "predictions.jsonl").string());
  }
  return runs;
}

nlohmann::ordered_json run_jailbreak(ChatModel& model, const JailbreakBench& b, const fs::path& dir, const RunInfo& info,
                                     const std::function<bool()>& stop) {
  auto attempts = load_jailbreak_set(b.set);
  JailbreakOptions o;
  o.moderation_prompt = read_text_file(b.moderation_prompt, "moderation prompt");
  o.max_tokens = b.max_tokens;
  OtherChat loaded;
  ChatModel& moderator = chat_or_self(b.moderator, "jailbreak.moderator", model, loaded, stop);
  auto r = evaluate_jailbreak(model, moderator, attempts, o);
  stamp(r.summary, info, {b.set, b.moderation_prompt}, {{"max_tokens", b.max_tokens}, {"moderator", moderator.name()}});
  write_json(dir / "results.json", r.summary);
  write_jsonl(dir / "attempts.jsonl", r.attempts);
  return r.summary;
}

nlohmann::ordered_json run_eval_suite(const ModelUnderTest& m, const EvalSuite& s, const fs::path& out) {
  nlohmann::ordered_json all = nlohmann::ordered_json::object();
  auto chat = make_local_chat(m.model, m.tokenizer, data::ChatTemplate::by_name(s.template_name), m.name, s.batch_size,
                              m.stop);
  const RunInfo info{m.dir, m.name, s.template_name, model_hash(m.dir)};
  auto check_stop = [&](const char* next) {
    if (m.stop && m.stop()) throw Interrupted(std::string("evaluation stopped as asked before ") + next);
  };
  if (s.mmlu) {
    check_stop("MMLU");
    all["mmlu"] = run_mmlu(m.model, m.tokenizer, *s.mmlu, out / "mmlu" / "results.json", info, m.stop);
  }
  if (s.mt_bench) {
    check_stop("MT-Bench");
    all["mt_bench"] = run_mt_bench(*chat, *s.mt_bench, out / "mt_bench", info, m.stop);
  }
  if (s.moderation) {
    check_stop("moderation");
    all["moderation"] = run_moderation(*chat, *s.moderation, out / "moderation", info);
  }
  if (s.jailbreak) {
    check_stop("jailbreak");
    all["jailbreak"] = run_jailbreak(*chat, *s.jailbreak, out / "jailbreak", info, m.stop);
  }
  return all;
}

}  // namespace chatmill::eval
