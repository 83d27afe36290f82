#!/usr/bin/env python3
"""Writes N synthetic conversations in the LMSYS-Chat-1M JSON Lines format (data/sample/lmsys_chat_sample.jsonl's
layout) for benchmarks: realistic sizes, meaningless text.

    python3 bench/synth_lmsys.py 100000 /tmp/synth_100k.jsonl [--seed 0]

Sizes follow the paper's Table 1: 1-5 turns (mean ~2), user prompts ~70 Llama-2 tokens (~265 chars), replies ~215
tokens (~790 chars), with long-tailed (log-normal) lengths (the char targets are calibrated on the Llama-2
tokenizer: this text has ~3.7 chars a token, capitals, punctuation and non-English words included); ~5% of
messages flagged across the 11 moderation categories; 20 models (skewed), 10 languages (~77% English), ~5%
redacted (NAME_1 placeholders). The same --seed gives the same file.
Text is random words from a self-written vocabulary, with punctuation, paragraphs, lists and code blocks.
Speed: sentences, code blocks and moderation entries are drawn from pools built once, and each line is
assembled from pre-serialised JSON pieces (same bytes as json.dumps of the record).
"""
import argparse
import json
import math
import random
import sys
import time

CATEGORIES = ["harassment", "harassment/threatening", "hate", "hate/threatening", "self-harm",
              "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence",
              "violence/graphic"]
# Flag shares roughly like the paper's Table 2 (sexual > harassment > violence > hate > self-harm).
FLAG_WEIGHTS = [14, 4, 4, 1.5, 0.6, 0.2, 0.3, 24, 1, 6, 2]
MODELS = ["vicuna-13b", "koala-13b", "alpaca-13b", "chatglm-6b", "llama-13b", "vicuna-33b", "gpt-3.5-turbo",
          "llama-2-13b-chat", "gpt-4", "oasst-pythia-12b", "claude-1", "claude-instant-1", "palm-2", "mpt-7b-chat",
          "claude-2", "fastchat-t5-3b", "wizardlm-13b", "dolly-v2-12b", "stablelm-tuned-alpha-7b", "vicuna-7b"]
MODEL_WEIGHTS = [1 / (k + 1) ** 1.3 for k in range(len(MODELS))]  # Zipf-like: vicuna-13b far ahead
LANGUAGES = ["English", "Portuguese", "Russian", "Chinese", "Spanish", "German", "French", "Japanese", "Italian",
             "Korean"]
LANGUAGE_WEIGHTS = [77, 3, 4, 4, 3, 2, 2, 2, 1.5, 1.5]
TURN_WEIGHTS = [50, 22, 13, 9, 6]  # 1..5 turns, mean 1.99

EN = """the a an and or but if then because so while when where which that this these those it they we you
I he she is are was were be been being have has had do does did can could will would should may might must
not no yes very more most less many much some any all each every other another such only also just still
even again already always never often sometimes usually time year day week month people person user model
system data file code function value list table answer question example result problem solution idea
reason way part place point fact case group number word line page story text message name world life work
system team company market price cost plan project goal step process method approach model training test
water energy light sound color music food health body mind city country school student teacher book paper
language computer program network server client request response error bug feature version update change
make take give get find use write read say tell ask explain describe show help try need want know think
feel look see come go keep start stop run build create design improve check compare choose follow learn
understand remember include consider provide support allow add remove move turn open close call send
good new first last long great little own old right big high different small large next early young
important few public bad same able simple clear easy hard free full special strong certain real best
better low late general specific possible common recent local main true whole short quick useful
about above after against along among around at before behind below between by during for from in
into near of off on out over through to under until up with within without across toward upon
here there now today tomorrow well also however therefore instead perhaps probably quite rather really
first second third finally overall please thanks sure okay of course example note summary detail
analysis review report draft outline section chapter title topic theme context background history
future present past morning evening night weekend holiday travel trip hotel flight ticket map road
car bike train station street house room kitchen garden window door table chair coffee tea bread
recipe dinner lunch breakfast price budget money bank account payment customer service product order
email letter meeting schedule deadline task priority status progress feedback comment suggestion
performance memory speed size format input output source target batch token sequence layer weight
loss accuracy score metric benchmark dataset sample label category class type field key index
variable parameter argument option setting config default limit range level rate ratio total average
python java rust javascript database query cloud browser website app phone screen button menu window
poem song story character scene dialogue joke riddle game player rule level score team match season
science history math physics chemistry biology economics philosophy art film novel author reader
health doctor exercise sleep diet stress habit routine goal skill career job interview resume salary""".split()
LANG_WORDS = {
    "Portuguese": "o a de que e do da em um para com não uma os no se na por mais as dos como mas foi ao ele das "
                  "tem à seu sua ou ser quando muito há nos já está eu também só pelo pela até isso ela entre era "
                  "depois sem mesmo aos ter seus quem nas me esse eles estão você tinha foram essa num nem".split(),
    "Spanish": "el la de que y a en un ser se no haber por con su para como estar tener le lo todo pero más hacer "
               "o poder decir este ir otro ese si me ya ver porque dar cuando él muy sin vez mucho saber qué sobre "
               "mi alguno mismo yo también hasta año dos querer entre así primero desde grande eso".split(),
    "German": "der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als auch es an werden "
              "aus er hat dass sie nach wird bei einer um am sind noch wie einem über einen so zum war haben nur "
              "oder aber vor zur bis mehr durch man sein wurde sei Frage Antwort Beispiel größer schön".split(),
    "French": "le de un être et à il avoir ne je son que se qui ce dans en du elle au pour pas que vous par sur "
              "faire plus dire me on mon lui nous comme mais pouvoir avec tout y aller voir en bien où sans tu ou "
              "leur homme si deux mari moi vouloir te femme venir quand grand celui très déjà été".split(),
    "Italian": "il di che e la a per un in è non una sono mi si con ma come lo ho le questo ci da se io cosa del "
               "più anche tu al ha della nel bene molto quando tutto sei perché così gli era lui fare noi hai "
               "quello niente qui sì grazie già città".split(),
    "Russian": "и в не на я быть он с что а по это она этот к но они мы как из у который то за свой что весь год "
               "от так о для ты же все тот мочь вы человек такой его сказать только или ещё бы себя один как уже "
               "до время если сам когда другой вот говорить наш мой знать стать при чтобы дело жизнь".split(),
    "Chinese": "我 你 他 的 是 了 在 有 和 不 这 个 们 中 大 为 上 来 说 国 到 以 要 会 就 出 也 时 可 能 对 生 "
               "学习 问题 方法 数据 模型 时间 工作 需要 我们 可以 什么 如何 解释 例子 代码 系统 用户".split(),
    "Japanese": "私 あなた これ それ です ます の に は を が で と も から まで 問題 方法 データ モデル 時間 "
                "仕事 説明 例 コード システム ユーザー 学習 日本 東京 今日 明日 とても 少し".split(),
    "Korean": "나 너 우리 이것 그것 은 는 이 가 을 를 에 에서 와 도 문제 방법 데이터 모델 시간 일 설명 예시 "
              "코드 시스템 사용자 학습 오늘 내일 정말 조금 합니다 입니다".split(),
}
NO_SPACE = {"Chinese", "Japanese"}
PUNCT = [".", ".", ".", ".", "?", "!", ":", ";"]


def sentence(rng, words, sep):
    """Random words with an occasional comma, capitalised, ending in punctuation."""
    n = max(2, int(rng.lognormvariate(2.3, 0.5)))  # ~11 words, long tail
    w = rng.choices(words, k=n)
    if n > 6 and sep == " ":
        w[rng.randrange(2, n - 2)] += ","
    text = sep.join(w)
    end = "。" if sep == "" else rng.choice(PUNCT)
    return text[:1].upper() + text[1:] + end


def code_block(rng):
    """A small Python-looking block with indentation and newlines."""
    name = "_".join(rng.choices(EN[60:200], k=2))
    body = [f"    {rng.choice(EN[60:200])} = {rng.choice(EN[60:200])}({rng.randint(0, 99)})"
            for _ in range(rng.randint(1, 6))]
    return "```python\ndef " + name + "(x):\n" + "\n".join(body) + "\n    return x\n```"


def moderation_json(rng, flag):
    """One moderation entry as JSON text; flag is a category name or None."""
    true = {flag, flag.split("/")[0]} if flag else set()
    scores = {c: round(rng.uniform(0.5, 0.99), 6) if c in true else float(f"{10 ** rng.uniform(-6, -0.7):.6g}")
              for c in CATEGORIES}
    cats = {c: c in true for c in CATEGORIES}
    return json.dumps({"categories": cats, "category_scores": scores, "flagged": bool(true)})


class Synth:
    def __init__(self, seed):
        self.rng = rng = random.Random(seed)
        # Pools built once; conversations sample from them.
        self.sentences = {lang: [sentence(rng, LANG_WORDS.get(lang, EN), "" if lang in NO_SPACE else " ")
                                 for _ in range(20000 if lang == "English" else 2000)] for lang in LANGUAGES}
        self.codes = [code_block(rng) for _ in range(500)]
        self.clean = [moderation_json(rng, None) for _ in range(2000)]
        self.flagged = {c: [moderation_json(rng, c) for _ in range(50)] for c in CATEGORIES}

    def text(self, lang, mean_chars, sigma):
        """A message of log-normal length (mean about mean_chars) with paragraphs, lists or code."""
        rng = self.rng
        pool = self.sentences[lang]
        # mean of a log-normal is exp(mu + sigma^2 / 2); ~65 chars per English sentence, ~20 for CJK.
        per = 22 if lang in NO_SPACE else 65
        n = max(1, round(rng.lognormvariate(math.log(mean_chars / per) - sigma * sigma / 2, sigma)))
        sents = rng.choices(pool, k=n)
        r = rng.random()
        if n > 4 and r < 0.15:  # a numbered list
            return sents[0] + "\n\n" + "\n".join(f"{i}. {s}" for i, s in enumerate(sents[1:], 1))
        body = "\n\n".join(" ".join(sents[i:i + 4]) for i in range(0, n, 4))
        if r > 0.93 and lang not in NO_SPACE:
            body += "\n\n" + rng.choice(self.codes)
        return body

    def record(self):
        rng = self.rng
        lang = rng.choices(LANGUAGES, LANGUAGE_WEIGHTS)[0]
        turns = rng.choices(range(1, 6), TURN_WEIGHTS)[0]
        redacted = rng.random() < 0.05
        msgs, mods = [], []
        for t in range(2 * turns):
            user = t % 2 == 0
            text = self.text(lang, 255 if user else 780, 0.9 if user else 0.7)
            flag = rng.choices(CATEGORIES, FLAG_WEIGHTS)[0] if rng.random() < 0.05 else None
            if flag and user:
                text = f"(synthetic text flagged as {flag}) " + text
            if redacted and t == 0:
                text = "NAME_1 asked me this. " + text
            msgs.append('{"content": ' + json.dumps(text, ensure_ascii=False) +
                        (', "role": "user"}' if user else ', "role": "assistant"}'))
            mods.append(rng.choice(self.flagged[flag]) if flag else rng.choice(self.clean))
        return (f'{{"conversation_id": "{rng.getrandbits(128):032x}", '
                f'"model": "{rng.choices(MODELS, MODEL_WEIGHTS)[0]}", "conversation": [{", ".join(msgs)}], '
                f'"turn": {turns}, "language": "{lang}", "openai_moderation": [{", ".join(mods)}], '
                f'"redacted": {"true" if redacted else "false"}}}\n')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("n", type=int, help="number of conversations")
    ap.add_argument("out", help="output .jsonl")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    start = time.time()
    synth = Synth(args.seed)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for i in range(0, args.n, 1000):  # write in chunks: fewer calls, bounded memory
            f.writelines(synth.record() for _ in range(min(1000, args.n - i)))
    print(f"wrote {args.n} conversations to {args.out} in {time.time() - start:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
