// chatmill eval mt-bench | moderation | jailbreak | arena-hard: benchmarks where a chat model answers — a local
// model folder or an endpoint (eval/chat_spec.h) — and, for some, a judge or moderator decides.
#include <fstream>
#include <iostream>

#include "cli/eval_commands.h"
#include "cli/options.h"
#include "common/error.h"
#include "common/text.h"
#include "eval/arena_hard.h"
#include "eval/chat_spec.h"
#include "eval/provenance.h"
#include "eval/suite.h"

namespace chatmill::cli {

namespace {

namespace fs = std::filesystem;

const char* kSpecHelp = "a model folder, or local=DIR,template=..,dtype=..,device=.. or url=URL,model=NAME,key_env=VAR";

// The model under test, and what its results record.
struct Subject {
  eval::ChatSpec spec;
  std::unique_ptr<eval::LoadedChat> chat;
  eval::RunInfo info;
};

Subject load_subject(const std::string& text, const std::string& model_id) {
  Subject s;
  s.spec = eval::parse_chat_spec(text, "--model");
  s.chat = std::make_unique<eval::LoadedChat>(s.spec);
  std::string name = model_id;
  if (name.empty()) name = s.spec.local.empty() ? s.spec.http.model : s.spec.name.substr(s.spec.name.find(':') + 1);
  s.info = {s.spec.local, name, s.spec.local.empty() ? "(endpoint)" : s.spec.template_name,
            s.spec.local.empty() ? "endpoint:" + s.spec.name : eval::model_hash(s.spec.local)};
  return s;
}

void print(const nlohmann::ordered_json& j, const fs::path& where) {
  std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\nwrote " << where.string() << "\n";
}

struct Common {
  std::string model, model_id, out;
  int threads = 0;
};

void add_common(CLI::App* c, Common& a, const std::string& default_out) {
  a.out = default_out;
  c->add_option("--model", a.model, std::string("model under test: ") + kSpecHelp)->required();
  c->add_option("--model-id", a.model_id, "its name in answer files and results (default: the folder's name)");
  c->add_option("--out", a.out, "output folder")->capture_default_str();
  c->add_option("--threads", a.threads, "CPU threads");
}

}  // namespace

void add_eval_chat_commands(CLI::App* eval) {
  // MT-Bench.
  struct MtArgs : Common {
    eval::MtBenchBench b;
  };
  auto mt = std::make_shared<MtArgs>();
  CLI::App* t = eval->add_subcommand("mt-bench", "MT-Bench: two-turn answers, then an LLM judge (single grading, or pairwise with --compare)");
  add_common(t, *mt, "mt_bench");
  t->add_option("--questions", mt->b.questions, "question.jsonl")->required();
  t->add_option("--judge-prompts", mt->b.judge_prompts, "judge_prompts.jsonl")->required();
  t->add_option("--reference", mt->b.reference, "reference answers (math, reasoning, coding)");
  t->add_option("--judge", mt->b.judge, std::string("the judge: ") + kSpecHelp)->required();
  t->add_option("--compare", mt->b.compare, "another model's answer file: judge pairwise, both orders");
  t->add_option("--max-new-tokens", mt->b.max_new_tokens)->capture_default_str();
  t->add_option("--judge-max-tokens", mt->b.judge_max_tokens)->capture_default_str();
  t->add_option("--seed", mt->b.seed)->capture_default_str();
  t->callback([mt] {
    set_threads(mt->threads);
    Subject s = load_subject(mt->model, mt->model_id);
    auto r = eval::run_mt_bench(s.chat->get(), mt->b, mt->out, s.info);
    print(r, fs::path(mt->out) / "results.json");
  });

  // Moderation micro-F1.
  struct ModArgs : Common {
    eval::ModerationBench b;
  };
  auto mod = std::make_shared<ModArgs>();
  CLI::App* m = eval->add_subcommand("moderation", "Moderation: [[n. category]] answers, multi-label micro-F1, zero- and k-shot");
  add_common(m, *mod, "moderation");
  m->add_option("--set", mod->b.set, "labelled JSONL {id, text, categories}")->required();
  m->add_option("--prompt", mod->b.prompt, "the moderation prompt file ({categories}, {none}, {message})")->required();
  m->add_option("--shots-file", mod->b.shots_file, "labelled JSONL with explanations: the examples");
  m->add_option("--shots", mod->b.shots, "numbers of shots, e.g. 0 1")->capture_default_str();
  m->add_option("--max-tokens", mod->b.max_tokens)->capture_default_str();
  m->callback([mod] {
    set_threads(mod->threads);
    Subject s = load_subject(mod->model, mod->model_id);
    print(eval::run_moderation(s.chat->get(), mod->b, mod->out, s.info), mod->out);
  });

  // Jailbreak success rate.
  struct JbArgs : Common {
    eval::JailbreakBench b;
  };
  auto jb = std::make_shared<JbArgs>();
  CLI::App* j = eval->add_subcommand("jailbreak", "Jailbreak benchmark: answers judged unsafe by a moderator; success rate");
  add_common(j, *jb, "jailbreak");
  j->add_option("--set", jb->b.set, "the builder's jailbreak.jsonl")->required();
  j->add_option("--moderation-prompt", jb->b.moderation_prompt, "the moderation prompt file")->required();
  j->add_option("--moderator", jb->b.moderator, std::string("the moderator: ") + kSpecHelp)->required();
  j->add_option("--max-tokens", jb->b.max_tokens)->capture_default_str();
  j->callback([jb] {
    set_threads(jb->threads);
    Subject s = load_subject(jb->model, jb->model_id);
    print(eval::run_jailbreak(s.chat->get(), jb->b, jb->out, s.info), fs::path(jb->out) / "results.json");
  });

  // Arena-Hard prompt rating and the top/bottom validation.
  struct ArenaArgs {
    std::string prompts, rubric, out = "arena_hard", strong, weak, judge, judge_prompts;
    std::vector<std::string> raters;
    double threshold = 9;
    int64_t max_tokens = 512;
    eval::TopBottomOptions tb;
    int threads = 0;
  };
  auto ar = std::make_shared<ArenaArgs>();
  CLI::App* a = eval->add_subcommand("arena-hard", "Rate prompts 1..10 by several raters, keep those all rate >= threshold; "
                                                   "optionally validate top-N vs bottom-N with a strong and a weak model");
  a->add_option("--prompts", ar->prompts, "JSONL {prompt_id, prompt} (the builder's arena_hard_candidates.jsonl)")->required();
  a->add_option("--rubric", ar->rubric, "the rating prompt file, with {prompt}")->required();
  a->add_option("--rater", ar->raters, std::string("a rater (repeat for several): ") + kSpecHelp)->required();
  a->add_option("--threshold", ar->threshold, "keep prompts every rater scores at least this")->capture_default_str();
  a->add_option("--rater-max-tokens", ar->max_tokens)->capture_default_str();
  a->add_option("--out", ar->out)->capture_default_str();
  a->add_option("--strong", ar->strong, "validation: the strong model");
  a->add_option("--weak", ar->weak, "validation: the weak model");
  a->add_option("--judge", ar->judge, "validation: the pairwise judge");
  a->add_option("--judge-prompts", ar->judge_prompts, "validation: judge_prompts.jsonl (pair-v2)");
  a->add_option("--top", ar->tb.top_n)->capture_default_str();
  a->add_option("--bottom", ar->tb.bottom_n)->capture_default_str();
  a->add_option("--top-above", ar->tb.top_above)->capture_default_str();
  a->add_option("--bottom-below", ar->tb.bottom_below)->capture_default_str();
  a->add_option("--answer-max-tokens", ar->tb.max_tokens)->capture_default_str();
  a->add_option("--threads", ar->threads);
  a->callback([ar] {
    set_threads(ar->threads);
    const bool validate = !ar->strong.empty() || !ar->weak.empty() || !ar->judge.empty();
    CHATMILL_CHECK(!validate || (!ar->strong.empty() && !ar->weak.empty() && !ar->judge.empty() && !ar->judge_prompts.empty()),
                   "validation needs --strong, --weak, --judge and --judge-prompts together");
    const fs::path out(ar->out);
    auto prompts = eval::load_arena_prompts(ar->prompts);
    const std::string rubric = read_text_file(ar->rubric, "rubric prompt");
    std::vector<std::unique_ptr<eval::LoadedChat>> raters;
    std::vector<eval::ChatModel*> ptrs;
    for (size_t i = 0; i < ar->raters.size(); ++i) {
      raters.push_back(std::make_unique<eval::LoadedChat>(eval::parse_chat_spec(ar->raters[i], "--rater " + std::to_string(i + 1))));
      ptrs.push_back(&raters.back()->get());
    }
    eval::JudgmentCache cache(out / "cache.jsonl");
    auto ratings = eval::rate_prompts(ptrs, prompts, rubric, cache, ar->max_tokens);
    auto kept = eval::select_agreed(ratings, ar->threshold);
    fs::create_directories(out);
    std::ofstream rf(out / "ratings.jsonl"), sf(out / "selected.jsonl");
    std::map<int, int64_t> histogram;
    for (const auto& r : ratings) {
      rf << nlohmann::ordered_json({{"prompt_id", r.prompt.id}, {"prompt", r.prompt.text}, {"scores", r.scores}, {"mean", r.mean()}})
                .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
         << "\n";
      histogram[static_cast<int>(r.mean() + 0.5)]++;
    }
    for (const auto& r : kept)
      sf << nlohmann::ordered_json({{"prompt_id", r.prompt.id}, {"prompt", r.prompt.text}, {"scores", r.scores}})
                .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
         << "\n";
    nlohmann::ordered_json hist = nlohmann::ordered_json::object();
    for (const auto& [k, n] : histogram) hist[k < 0 ? "unreadable" : std::to_string(k)] = n;
    nlohmann::ordered_json res = {{"benchmark", "arena-hard-rating"}, {"prompts", ratings.size()}, {"selected", kept.size()},
                                  {"threshold", ar->threshold}, {"raters", nlohmann::ordered_json::array()},
                                  {"mean_score_histogram", hist}};
    for (auto* p : ptrs) res["raters"].push_back(p->name());
    if (validate) {
      eval::LoadedChat strong(eval::parse_chat_spec(ar->strong, "--strong")), weak(eval::parse_chat_spec(ar->weak, "--weak")),
          judge(eval::parse_chat_spec(ar->judge, "--judge"));
      res["validation"] = eval::validate_top_bottom(ratings, strong.get(), weak.get(), judge.get(),
                                                    eval::load_judge_prompts(ar->judge_prompts), cache, out, ar->tb);
    }
    std::ofstream(out / "results.json") << res.dump(2) << "\n";
    print(res, out / "results.json");
  });
}

}  // namespace chatmill::cli
