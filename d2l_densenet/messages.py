"""What the package says to a reader, in English and Chinese: one table
keyed by code (a leaf every module may import; it imports none of ours).

``text(code, lang, **fields)`` formats the entry ``MESSAGES[code][lang]``
with ``fields`` (``str.format`` placeholders, the same in both
languages). A caller that knows the reader's language passes it; where
none is passed the language is the one setting :func:`language` reads:
``$D2L_DENSENET_LANG`` (``en`` or ``zh``), else ``"en"``. The notebooks'
``choose(..., lang=...)`` sets it (so a command the Chinese edition
starts with ``subprocess`` speaks Chinese too), the command line's
``--lang`` sets it for one run.

A decision that explains itself (``amp.resolve_amp``) returns
:class:`Message` parts, codes with fields, and the caller renders them
in the reader's language (:func:`join`): no English sentence is ever
translated after the fact.

Exceptions keep their English class names; their message text follows
the language.
"""
from __future__ import annotations

import contextlib
import os
import string
from collections.abc import Iterable, Iterator, Mapping

__all__ = ["LANGUAGES", "LANG_ENV", "MESSAGES", "language", "set_language",
           "using", "text", "Message", "join", "placeholders"]

#: The reader's languages: English and the Chinese edition's.
LANGUAGES = ("en", "zh")
#: The environment variable that holds the reader's language.
LANG_ENV = "D2L_DENSENET_LANG"

#: Every message a reader of the package may see, by code:
#: ``{code: {"en": template, "zh": template}}``.
MESSAGES: dict[str, dict[str, str]] = {
    # --- parts joined into one line (join) ------------------------------
    "sep": {"en": "; ", "zh": "；"},
    # --- devices --------------------------------------------------------
    "device.named": {"en": "{device} ({name})", "zh": "{device}（{name}）"},
    # --- the precision choice (amp.py): reasons --------------------------
    "amp.fp32": {"en": "fp32", "zh": "使用fp32"},
    "amp.as_asked": {"en": "as asked", "zh": "按指定的精度"},
    "amp.gpu_bf16": {"en": "the GPU supports bf16", "zh": "该GPU支持bf16"},
    "amp.gpu_no_bf16": {"en": "the GPU has no bf16",
                        "zh": "该GPU不支持bf16"},
    "amp.no_decision": {"en": "no autocast decision for {device}",
                        "zh": "在{device}上不自动选择数值精度"},
    "amp.set_by_env": {"en": "set by {env}={value}",
                       "zh": "由环境变量{env}={value}指定"},
    "amp.no_onednn": {"en": "this PyTorch has no oneDNN (CPU: {cpu})",
                      "zh": "此PyTorch没有oneDNN（CPU：{cpu}）"},
    "amp.bf16_not_reported": {"en": "CPU {cpu}, bf16 support not reported",
                              "zh": "CPU：{cpu}，oneDNN未报告是否支持bf16"},
    "amp.onednn_bf16": {"en": "oneDNN reports bf16 support (CPU {cpu})",
                        "zh": "oneDNN报告支持bf16（CPU：{cpu}）"},
    "amp.onednn_no_bf16": {
        "en": "oneDNN reports no bf16 support (CPU {cpu})",
        "zh": "oneDNN报告不支持bf16（CPU：{cpu}）"},
    "amp.faster": {"en": "measured bf16 {speedup:.2f}x faster than fp32",
                   "zh": "实测bf16的速度是fp32的{speedup:.2f}倍"},
    "amp.not_faster": {
        "en": "measured bf16 at {speedup:.2f}x fp32's speed (needs >= "
              "{needed}x)",
        "zh": "实测bf16的速度是fp32的{speedup:.2f}倍（至少需要{needed}倍）"},
    "amp.spread": {
        "en": "median of {pairs} alternating pairs, {low:.2f}x to "
              "{high:.2f}x",
        "zh": "取{pairs}对交替测量的中位数（各对为{low:.2f}～{high:.2f}倍）"},
    "amp.close_call": {
        "en": "a close call (within {margin:.0%} of the {needed}x "
              "threshold): another run may choose otherwise, set {env} or "
              "--amp to fix it",
        "zh": "结果接近阈值（与{needed}倍相差不到{margin:.0%}）：再次运行可能"
              "作出不同的选择，可用{env}或--amp固定"},
    "amp.none_fp32": {"en": "none (fp32)", "zh": "无（fp32）"},
    # --- run modes and options (settings.py) ----------------------------
    "settings.banner": {"en": "{mode} mode on {where}: {shown}\n({note})",
                        "zh": "{mode}模式，设备{where}：{shown}\n（{note}）"},
    "settings.bad_mode": {"en": "{env} must be one of {modes}, got {mode!r}",
                          "zh": "{env}只能是{modes}之一，而不是{mode!r}"},
    "settings.no_gpu": {
        "en": "{env}=gpu but no GPU is available to PyTorch (looked for "
              "{accelerators}); use cpu or smoke",
        "zh": "{env}=gpu，但PyTorch找不到GPU（查找了{accelerators}）；"
              "请改用cpu或smoke"},
    "settings.books": {"en": "the book's settings", "zh": "书中的设置"},
    "settings.reduced": {
        "en": "reduced from the GPU settings ({book}); results differ from "
              "the book",
        "zh": "由GPU设置（{book}）缩减而来，结果与书中不同"},
    "settings.amp_auto": {"en": "amp=auto -> {amp}: {reason}",
                          "zh": "amp=auto -> {amp}：{reason}"},
    "settings.train_options": {
        "en": "training options on {device}: amp={amp}, channels_last="
              "{channels_last}, lr_schedule={lr_schedule}\n(amp: {reason})",
        "zh": "{device}上的训练选项：amp={amp}，channels_last="
              "{channels_last}，lr_schedule={lr_schedule}\n（数值精度：{reason}）"},
    # --- the GPU-mode rehearsal (settings.choose) -----------------------
    "settings.rehearsal": {
        "en": "GPU mode REHEARSED on {where}: {shown}\n(a rehearsal, not a "
              "GPU run: GPU mode's code runs on the CPU at smoke mode's "
              "size ({sizes}); it checks the GPU paths' logic, not their "
              "speed or memory figures)",
        "zh": "在{where}上预演GPU模式：{shown}\n（这是预演，不是在GPU上运行："
              "GPU模式的代码按smoke模式的规模（{sizes}）在CPU上运行，只检验"
              "GPU分支的逻辑，速度和内存读数都不代表GPU）"},
    "settings.rehearsal_undeclared": {
        "en": "the GPU-mode rehearsal cannot tell whether {keys} (different "
              "in GPU and smoke mode) are sizes or GPU mode's recipe: name "
              "each in choose(..., rehearse=(...)) to take smoke mode's "
              "value, or in keep=(...) to keep GPU mode's, or give its "
              "value in a \"gpu-rehearsal\" dict",
        "zh": "GPU模式预演无法判断{keys}（GPU模式与smoke模式中不同）是规模"
              "还是GPU模式的训练方案：请把每一个写进choose(..., "
              "rehearse=(...))（取smoke模式的值）或keep=(...)（保留GPU模式"
              "的值），或者在\"gpu-rehearsal\"字典中给出它的值"},
    "settings.rehearsal_size_kept": {
        "en": "refused: the GPU-mode rehearsal would run {key}={value!r}, "
              "GPU mode's size, on the CPU (smoke mode: {smoke!r}); take "
              "it from smoke mode (rehearse=) or give a small value in the "
              "\"gpu-rehearsal\" dict",
        "zh": "拒绝运行：GPU模式预演会在CPU上使用GPU模式的规模{key}="
              "{value!r}（smoke模式为{smoke!r}）；请让它取smoke模式的值"
              "（rehearse=），或在\"gpu-rehearsal\"字典中给一个小的值"},
    "settings.rehearsal_bad_keys": {
        "en": "{where}: {keys} not in GPU mode's settings ({known})",
        "zh": "{where}：{keys}不在GPU模式的设置中（已有：{known}）"},
    "settings.rehearsal_twice": {
        "en": "{keys} named more than once in rehearse=, keep= and the "
              "\"gpu-rehearsal\" dict: each setting is either a size or "
              "part of the recipe",
        "zh": "{keys}在rehearse=、keep=和\"gpu-rehearsal\"字典中出现了不止"
              "一次：每个设置要么是规模，要么属于训练方案"},
    "settings.rehearsal_no_smoke": {
        "en": "rehearse=: {keys} not in smoke mode's settings",
        "zh": "rehearse=：smoke模式的设置中没有{keys}"},
    # --- checkpoint folders (checkpoint_folders.py) ----------------------
    "folders.drive": {
        "en": "checkpoints in {folder} (Google Drive: a disconnect costs at "
              "most the epoch in progress; run again to resume)",
        "zh": "检查点保存在{folder}（Google云端硬盘：断开连接最多损失正在"
              "训练的那个迭代周期；重新运行即可继续训练）"},
    "folders.rehearsal": {
        "en": "checkpoints in {folder} (the rehearsal's local stand-in for "
              "Google Drive; a second run resumes from them)",
        "zh": "检查点保存在{folder}（预演中代替Google云端硬盘的本地文件夹；"
              "再运行一次会从这些检查点继续训练）"},
    "folders.local": {
        "en": "checkpoints in {folder} (run again to resume)",
        "zh": "检查点保存在{folder}（重新运行即可继续训练）"},
    "folders.temporary": {
        "en": "checkpoints in {folder} (smoke mode: a temporary folder, "
              "removed when Python exits)",
        "zh": "检查点保存在临时文件夹{folder}（smoke模式，Python退出时"
              "删除）"},
    "folders.none": {"en": "no checkpoints in {mode} mode",
                     "zh": "{mode}模式不保存检查点"},
    "folders.bad_name": {
        "en": "checkpoint folder name {name!r}: give a relative path "
              "without '..', such as '04_avg_vs_max'",
        "zh": "检查点文件夹名{name!r}无效：请给出不含'..'的相对路径，"
              "例如'04_avg_vs_max'"},
    "folders.bad_mode": {
        "en": "mode must be one of {modes} (what choose() returned), got "
              "{mode!r}",
        "zh": "mode只能是{modes}之一（choose()返回的模式），而不是{mode!r}"},
    # --- models ---------------------------------------------------------
    "models.channels": {
        "en": "{model} was built for {expected} input channel(s) but got "
              "{got} (input shape {shape}); build it with in_channels={got} "
              "or convert the images",
        "zh": "{model}是按{expected}个输入通道构建的，输入却有{got}个通道"
              "（输入形状{shape}）；请用in_channels={got}构建它，"
              "或者先转换图像"},
    "models.too_small": {
        "en": "Input images are {height}x{width}, but {model} needs at "
              "least {need}x{need}: its down-sampling layers shrink smaller "
              "images to nothing. Resize the images, e.g. "
              "load_data_fashion_mnist(batch_size, resize=96) as the book "
              "does",
        "zh": "输入图像为{height}×{width}，但{model}至少需要{need}×{need}："
              "更小的图像经过它的下采样层会缩得一个像素都不剩。请先放大图像，"
              "例如像书中那样调用load_data_fashion_mnist(batch_size, "
              "resize=96)"},
    # --- pretrained weights (family.py) ---------------------------------
    "family.new_classifier": {
        "en": "The weights' classifier has {theirs} classes, the model "
              "{ours} (num_classes={ours}): the classifier is NOT loaded and "
              "keeps its fresh random init; everything else is pretrained. "
              "Fine-tune before use.",
        "zh": "权重中的分类器有{theirs}个类别，模型有{ours}个"
              "（num_classes={ours}）：分类器不加载，保留新的随机初始化，"
              "其余部分都是预训练的权重。使用前请先微调。"},
    "family.summed_stem": {
        "en": "The weights' stem (features.conv0) takes 3 (RGB) channels, "
              "the model 1 (in_channels=1): the RGB filters are summed, so a "
              "gray image gives the response of the same image repeated in "
              "R, G and B. Fine-tune before use.",
        "zh": "权重中的起始模块（features.conv0）接受3个（RGB）通道，模型只有"
              "1个（in_channels=1）：RGB三组卷积核相加，因此一张灰度图像得到"
              "的响应，与把它复制到R、G、B三个通道时相同。使用前请先微调。"},
    # --- memory (measure.py) --------------------------------------------
    "measure.report": {
        "en": "{device}: peak {peak:.1f} MiB = baseline {baseline:.1f} MiB "
              "+ step {extra:.1f} MiB ({method})",
        "zh": "{device}：峰值{peak:.1f} MiB = 基线{baseline:.1f} MiB + "
              "单步新增{extra:.1f} MiB（{method}）"},
    "measure.rss": {"en": "; RSS high-water +{rss:.1f} MiB",
                    "zh": "；进程常驻内存（RSS）最高水位增长{rss:.1f} MiB"},
    "measure.method_max": {
        "en": "{device} max_memory_allocated",
        "zh": "由torch.{device}.max_memory_allocated测得"},
    "measure.method_mps": {
        "en": "mps current_allocated_memory, sampled",
        "zh": "对torch.mps.current_allocated_memory采样测得"},
    "measure.method_cpu": {
        "en": "torch.profiler CPU allocator",
        "zh": "由torch.profiler记录的CPU分配器测得"},
    # --- paired comparisons (stats.py) ----------------------------------
    "stats.too_few": {
        "en": "no test: {n} pair(s), a test needs at least {min_pairs}",
        "zh": "无法检验：只有{n}对，一次检验至少需要{min_pairs}对"},
    "stats.all_equal": {"en": "no test: the differences are all equal",
                        "zh": "无法检验：各对的差全都相等"},
    "stats.better": {"en": "{better} better (p = {p:.3f} < {alpha})",
                     "zh": "{better}更好（p = {p:.3f} < {alpha}）"},
    "stats.undetectable_n": {
        "en": "no difference detectable with {n} pairs (p = {p:.3f})",
        "zh": "用{n}对检测不到差异（p = {p:.3f}）"},
    "stats.same_right": {
        "en": "no test: both variants got the same examples right",
        "zh": "无法检验：两种变体答对的样本完全相同"},
    "stats.better_g": {"en": "{better} better (p = {p:.3g} < {alpha})",
                       "zh": "{better}更好（p = {p:.3g} < {alpha}）"},
    "stats.undetectable": {"en": "no difference detectable (p = {p:.3g})",
                           "zh": "检测不到差异（p = {p:.3g}）"},
    # --- fonts (plots.py) -------------------------------------------------
    "plots.missing_font": {
        "en": "No font for Chinese text was found: Chinese shows as boxes. "
              "Install one (Debian/Ubuntu/Colab: apt-get install -y {noto}, "
              "or the smaller {wqy}) and rerun the settings cell.",
        "zh": "没有找到能显示中文的字体，图中的中文会显示为方框。"
              "在Debian/Ubuntu/Colab上安装一个：`apt-get install -y {noto}`"
              "（或下载更小的`{wqy}`；在Colab的单元格中，命令前加`!`），"
              "然后重新运行设置单元格（`choose(...)`）。macOS和Windows自带"
              "中文字体（PingFang SC、Microsoft YaHei）。"},
    # --- checkpoints and the training loop --------------------------------
    "checkpoint.resuming": {
        "en": "resuming from {path}: epoch {done} of {total} done",
        "zh": "从{path}继续训练：{total}个迭代周期中已完成{done}个"},
    "train.nothing_to_train": {
        "en": "nothing to train: the checkpoint holds epoch {done} of "
              "{total}",
        "zh": "无需训练：检查点中已完成第{done}个迭代周期（共{total}个）"},
    # --- the command line (cli.py) --------------------------------------
    "cli.recipe": {"en": "{name} recipe on {device}: {recipe}",
                   "zh": "{name}训练方案，设备{device}：{recipe}"},
    "cli.reduced": {
        "en": " (reduced from the book's {book}; results differ from the "
              "book)",
        "zh": "（由书中的设置{book}缩减而来，结果与书中不同）"},
    "cli.processes": {"en": "{world} processes, {each} examples each per "
                            "step",
                      "zh": "{world}个进程，每步每个进程{each}个样本"},
    "cli.sync_bn_alone": {"en": "--sync-bn has no effect in a single process",
                          "zh": "只有一个进程时，--sync-bn不起作用"},
    "cli.amp_resumed": {
        "en": "amp={amp}: the precision {path} was trained in (--resume "
              "keeps it; not measured again)",
        "zh": "amp={amp}：{path}训练时用的精度（--resume沿用它，不再重新"
              "测量）"},
    "cli.final_tested": {
        "en": "final test accuracy {acc:.4f} on {n:,} Fashion-MNIST test "
              "images after {minutes:.1f} min",
        "zh": "最终测试精度{acc:.4f}（{n:,}张Fashion-MNIST测试图像），"
              "用时{minutes:.1f}分钟"},
    "cli.final_saved": {
        "en": "final test accuracy {acc:.4f} (from the checkpoint) after "
              "{minutes:.1f} min",
        "zh": "最终测试精度{acc:.4f}（取自检查点），用时{minutes:.1f}分钟"},
    "cli.too_small": {
        "en": "--resize {resize}: images of {side}x{side} (0 keeps 28x28) "
              "are too small, {model} needs at least {need}x{need} (its "
              "down-sampling shrinks smaller ones to nothing); use --resize "
              "{use} or more (the book uses 96)",
        "zh": "--resize {resize}：{side}×{side}的图像（0表示保持28×28）太小，"
              "{model}至少需要{need}×{need}（更小的图像经过下采样会缩得一个"
              "像素都不剩）；请用--resize {use}或更大的值（书中用96）"},
    "cli.error": {"en": "error: {message}", "zh": "错误：{message}"},
    "cli.usage": {"en": "error: {message} (see {prog} --help)",
                  "zh": "错误：{message}（见{prog} --help）"},
    "cli.interrupted": {"en": "interrupted", "zh": "已中断"},
    "cli.out_of_memory": {
        "en": "out of memory ({first}); lower --batch-size or --resize, or "
              "try --amp bf16",
        "zh": "内存不足（{first}）；请减小--batch-size或--resize，"
              "或试试--amp bf16"},
    "cli.internal": {
        "en": "internal error, {kind}: {error} (run again with --debug for "
              "the traceback)",
        "zh": "内部错误，{kind}：{error}（加上--debug再运行一次，"
              "可以看到调用栈）"},
}


def placeholders(template: str) -> set[str]:
    """The field names of a ``str.format`` template (``"{n:,}"`` -> n)."""
    return {name.split(".")[0].split("[")[0]
            for _, name, _, _ in string.Formatter().parse(template)
            if name is not None}


def _check(lang: str, where: str) -> str:
    if lang not in LANGUAGES:
        raise ValueError(f"{where} must be one of {', '.join(LANGUAGES)}, "
                         f"got {lang!r} (语言只能是en或zh)")
    return lang


def language(lang: str | None = None) -> str:
    """The reader's language: ``lang`` if given, else
    ``$D2L_DENSENET_LANG``, else ``"en"``; a ``ValueError`` naming the
    value for anything but ``en`` or ``zh``."""
    if lang is not None:
        return _check(lang, "lang")
    value = os.environ.get(LANG_ENV, "").strip()
    return _check(value, LANG_ENV) if value else "en"


def set_language(lang: str) -> str:
    """Make ``lang`` the reader's language for this process and the
    commands it starts (``$D2L_DENSENET_LANG``). Called by
    ``settings.choose(..., lang=...)``, the notebooks' settings cell."""
    os.environ[LANG_ENV] = _check(lang, "lang")
    return lang


@contextlib.contextmanager
def using(lang: str | None) -> Iterator[str]:
    """Within the block the reader's language is ``lang`` (None: as it
    is); afterwards it is what it was (the command line's ``--lang``)."""
    old = os.environ.get(LANG_ENV)
    current = language(lang)
    os.environ[LANG_ENV] = current
    try:
        yield current
    finally:
        if old is None:
            os.environ.pop(LANG_ENV, None)
        else:
            os.environ[LANG_ENV] = old


def text(code: str, lang: str | None = None, *,
         table: Mapping[str, Mapping[str, str]] = MESSAGES,
         **fields) -> str:
    """``table[code]`` in ``lang`` (None: :func:`language`), formatted
    with ``fields``."""
    return table[code][language(lang)].format(**fields)


class Message:
    """One message not yet rendered: a code of ``MESSAGES`` and its
    fields. ``str()`` renders it in the reader's language."""

    __slots__ = ("code", "fields")

    def __init__(self, code: str, **fields) -> None:
        if code not in MESSAGES:
            raise KeyError(f"no message {code!r} in MESSAGES")
        self.code, self.fields = code, fields

    def text(self, lang: str | None = None) -> str:
        return text(self.code, lang, **self.fields)

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        fields = "".join(f", {k}={v!r}" for k, v in self.fields.items())
        return f"Message({self.code!r}{fields})"

    def __eq__(self, other) -> bool:
        return (isinstance(other, Message) and self.code == other.code
                and self.fields == other.fields)

    def __hash__(self) -> int:
        return hash((self.code, tuple(sorted(self.fields.items()))))

    def __reduce__(self):
        return (_message, (self.code, self.fields))


def _message(code: str, fields: dict) -> Message:
    return Message(code, **fields)


def join(parts: Iterable[Message | str], lang: str | None = None) -> str:
    """``parts`` rendered in ``lang`` and joined into one line ("; " in
    English, "；" in Chinese); a ``str`` part is shown as it is."""
    lang = language(lang)
    return text("sep", lang).join(
        p if isinstance(p, str) else p.text(lang) for p in parts)
