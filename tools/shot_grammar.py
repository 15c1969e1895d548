"""The shot grammar as data: framings, camera moves, the coverage a product film or a film about one thing adds,
the end card, and the words that choose a shot size, a camera motion and a look (lighting and mood).
tools/plan_offline.py reads these tables; nothing here runs.
"""

from __future__ import annotations

FRAMING: dict[str, str] = {
    "establishing": "extreme wide establishing shot, 24mm lens, high angle",
    "wide": "wide shot, 28mm lens, eye level",
    "medium": "medium shot, 35mm lens, eye level",
    "close-up": "close-up, 85mm lens, shallow depth of field",
    "insert": "insert shot, 100mm lens, hands and objects",
    "detail": "extreme close-up detail, 100mm macro lens",
    "hero": "hero product shot, 50mm lens, low angle, centered",
    "over-the-shoulder": "over-the-shoulder shot, 50mm lens",
}
MOTION_WORDS: dict[str, str] = {
    "push-in": "slow push-in",
    "pull-out": "slow pull-out",
    "pan-left": "slow pan left",
    "pan-right": "slow pan right",
    "drift": "gentle handheld drift",
    "static": "locked-off static camera",
}
KIND_NAMES: dict[str, dict[str, str]] = {
    "en": {k: k.replace("-", " ") for k in FRAMING},
    "zh": {
        "establishing": "远景",
        "wide": "全景",
        "medium": "中景",
        "close-up": "特写",
        "insert": "插入镜头",
        "detail": "大特写",
        "hero": "主视觉",
        "over-the-shoulder": "过肩",
    },
}
# A further angle on a beat that another shot already shows.
COVERAGE_NOTE = {"en": "{text} (another angle: {kind})", "zh": "{text}（另一角度：{kind}）"}
# Words that choose a shot size. English entries are word prefixes; Chinese ones are substrings.
KIND_CUES: list[tuple[str, tuple[str, ...]]] = [
    ("detail", ("detail", "texture", "stitch", "macro", "button", "logo", "细节", "纹理", "材质", "按键", "微距")),
    ("close-up", ("close-up", "close up", "face", "eyes", "smile", "tear", "lips", "特写", "脸", "眼", "微笑", "泪")),
    ("insert", ("hand", "fingers", "taps", "presses", "picks up", "phone", "手指", "手机", "拿起", "按下")),
    ("wide", ("city", "street", "landscape", "skyline", "crowd", "field", "beach", "城市", "街道", "风景", "人群", "海边", "山")),
]  # fmt: skip
MOTION_CUES: list[tuple[str, tuple[str, ...]]] = [
    ("pan-left", ("pan left", "pans left", "左摇", "向左")),
    ("pan-right", ("pan right", "pans right", "pan", "sweep", "across", "右摇", "向右", "横移", "平移", "摇镜")),
    ("pull-out", ("pull back", "pull out", "pulls back", "zoom out", "reveal", "拉远", "拉开", "揭示")),
    ("push-in", ("push in", "pushes in", "zoom in", "approach", "closer", "推近", "推进", "靠近")),
    ("static", ("still", "static", "motionless", "frozen", "静止", "固定", "一动不动")),
    ("drift", ("drift", "float", "handheld", "wander", "漂浮", "缓缓", "手持", "漫步")),
]  # fmt: skip
DEFAULT_MOTIONS: dict[str, tuple[str, ...]] = {
    "establishing": ("pan-right", "pan-left", "drift"),
    "wide": ("pan-left", "pan-right", "drift"),
    "medium": ("drift", "push-in"),
    "close-up": ("push-in",),
    "insert": ("static", "push-in"),
    "detail": ("push-in", "static"),
    "hero": ("push-in",),
    "over-the-shoulder": ("drift",),
}
STUDIO_LIGHT = "clean studio lighting, large softbox key, subtle rim light"
# (cues, lighting, mood), first match wins, so the more specific entries come first.
LOOKS: list[tuple[tuple[str, ...], str, str]] = [
    (("night", "midnight", "neon", "dark", "夜", "霓虹", "深夜", "黑暗"),
     "low-key night lighting, practical lamps and neon accents, deep shadows", "moody, nocturnal"),
    (("sunrise", "dawn", "morning", "first light", "日出", "清晨", "黎明", "早晨", "晨光"),
     "golden-hour sunrise light, long soft shadows", "hopeful, fresh"),
    (("sunset", "dusk", "golden hour", "evening", "黄昏", "日落", "傍晚", "夕阳"),
     "warm golden-hour backlight, gentle lens flare", "nostalgic, warm"),
    (("rain", "storm", "雨", "暴风"),
     "overcast diffuse light, wet reflections", "melancholic, introspective"),
    (("snow", "winter", "ice", "雪", "冬", "冰"),
     "cool soft daylight, bright snow bounce", "quiet, crisp"),
    (("lonely", "alone", "sad", "grief", "孤独", "悲伤", "难过", "寂寞"),
     "cool low-key light, a single soft source", "lonely, quiet"),
    (("tense", "danger", "chase", "fear", "紧张", "危险", "追", "恐惧"),
     "hard contrasty light, harsh shadows", "tense, urgent"),
    (("party", "festival", "celebrat", "birthday", "派对", "节日", "庆祝", "春节", "生日"),
     "colorful festive practicals, warm bokeh", "joyful, lively"),
    (("cozy", "warm", "home", "coffee", "tea", "温暖", "温馨", "家", "咖啡", "茶"),
     "warm tungsten practicals, soft window fill", "cozy, intimate"),
    (("beach", "summer", "sunny", "sunlight", "海滩", "夏", "阳光"),
     "bright high-key sunlight, crisp shadows", "energetic, joyful"),
    (("sport", "run", "gym", "energy", "运动", "跑", "健身", "活力"),
     "punchy high-contrast daylight", "energetic, dynamic"),
    (("forest", "mountain", "nature", "garden", "森林", "山", "自然", "花园"),
     "dappled natural light through leaves", "serene, open"),
    (("office", "city", "urban", "street", "办公", "城市", "街道"),
     "cool daylight through windows, mixed practicals", "modern, busy"),
    (("calm", "quiet", "peace", "relax", "安静", "宁静", "平静", "放松"),
     "soft diffuse light", "calm, peaceful"),
    (("product", "launch", "studio", "premium", "产品", "新品", "发布", "高端"),
     STUDIO_LIGHT, "premium, modern"),
]  # fmt: skip
DEFAULT_LOOK = ("soft natural daylight", "calm, clear")
# Lighting that the scene heading's INT./EXT. adds when the beat's own words name no look.
INTERIOR_LOOK = ("interior practical lighting, warm lamps, soft falloff", "intimate, close")
EXTERIOR_LOOK = ("natural exterior daylight, open sky", "open, airy")
# The look of a product shot with nothing else to go by: studio for the close kinds, daylight for the rest.
PRODUCT_LOOKS: dict[str, tuple[str, str]] = {
    "hero": (STUDIO_LIGHT, "premium, confident"),
    "detail": ("raking side light that shows texture, dark background", "tactile, precise"),
    "insert": ("soft window light on hands, shallow depth", "intimate, tactile"),
    "close-up": ("soft key light with a gentle rim", "refined, calm"),
}
# Coverage the grammar adds to a product film that has fewer beats than shots, in the order it is used; each
# entry is (kind, English description, Chinese description). Lengths decide how many are used.
PRODUCT_COVERAGE: list[tuple[str, str, str]] = [
    ("detail", "Extreme close-up on the materials and finish of {subject}", "大特写：{subject}的材质与做工"),
    ("insert", "Insert: a hand picks up {subject}", "插入镜头：一只手拿起{subject}"),
    ("medium", "Medium shot: {subject} in everyday use", "中景：日常使用中的{subject}"),
    ("close-up", "Close-up: {subject} turning slowly in soft light", "特写：{subject}在柔光中缓缓转动"),
    ("wide", "Wide shot: {subject} in the place it belongs", "全景：{subject}在属于它的环境中"),
    ("detail", "Macro detail of {subject}: the part that makes it different", "微距：{subject}与众不同之处"),
    ("insert", "Insert: {subject} set down on a table, seen from above", "插入镜头：俯拍{subject}被放在桌上"),
    ("close-up", "Close-up: a face reacting to {subject}", "特写：人们看到{subject}时的表情"),
]
# Coverage of a film about one thing in one place ("a paper boat on a rainy street"): the first entry opens, the
# last closes, the middle ones are used in order. Each is (kind, English, Chinese); {subject}, {place} (the
# setting with its joining word, e.g. "on the rainy street") and {setting}.
SUBJECT_COVERAGE: list[tuple[str, str, str]] = [
    ("establishing", "Establishing shot: {setting}, {subject} small in the frame", "远景：{setting}，{subject}在画面一角"),
    ("medium", "Medium shot: {subject} {place}", "中景：{setting}中的{subject}"),
    ("close-up", "Close-up: {subject}, {setting} soft behind it", "特写：{subject}，身后的{setting}虚化"),
    ("detail", "Extreme close-up: the texture and edges of {subject}", "大特写：{subject}的质感与轮廓"),
    ("insert", "Top shot: {subject} seen from above, {setting} around it", "俯拍：{subject}与周围的{setting}"),
    ("wide", "Low-angle wide shot: {subject} against {setting}", "低角度全景：{subject}与身后的{setting}"),
    ("close-up", "Close-up: light moving across {subject}", "特写：光影掠过{subject}"),
    ("wide", "Closing wide shot: {subject} {place} as the camera pulls away", "收尾全景：{setting}中的{subject}，镜头缓缓拉远"),
]  # fmt: skip
# The opening of a film whose brief has nothing to film before the product.
OPENING = {
    "en": "Establishing shot: the world {subject} is made for",
    "zh": "远景：{subject}所属的生活场景",
}
END_CARD = {
    "en": "End card: {subject}, centered, with its copy",
    "zh": "结尾画面：{subject}居中，配上文案",
}
# Separator between the pieces of the end card's subtitle (name, slogan, price or call to action).
END_CARD_JOIN = {"en": " · ", "zh": "｜"}
# When two shots would still read the same, a different angle words them apart.
ANGLES = {
    "en": [
        "from a low angle",
        "from above",
        "from the side",
        "in silhouette",
        "reflected in glass",
        "in soft focus",
    ],
    "zh": ["低角度", "俯拍", "侧面", "剪影", "玻璃倒影", "柔焦"],
}
# Relative screen time of each shot size (an establishing shot and the hero breathe, an insert is quick).
KIND_WEIGHTS = {"establishing": 1.2, "hero": 1.3, "insert": 0.8, "detail": 0.8}
# Sizes the grammar moves through between the opening and the close, and for more angles on one beat.
CYCLE = ["medium", "close-up", "wide", "insert", "medium", "detail"]
COVERAGE_CYCLE = ["close-up", "detail", "medium", "insert", "wide"]
# Reading speed, characters per second, for fitting dialogue into a shot's time.
READ_CHARS_PER_SECOND = {"en": 15, "zh": 6}
