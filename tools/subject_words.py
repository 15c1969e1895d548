"""The kinds of subject a film can be about, and the words (English and Chinese) that name each one.

One vocabulary for reading the brief (tools/brief.py: which kind a brief or a beat is about) and for drawing the
subject (tools/silhouettes.py: which silhouette a panel shows), so the two never disagree about a word. Latin
words match whole (plurals in -s and -es too); Chinese has no spaces, so a Chinese word matches anywhere.
"""

from __future__ import annotations

import re
from functools import cache

# Words are separated by spaces; "_" stands for a space inside one ("ear_cup": the ear cups are headphones).
# Ordered: where one kind must win over another (reading a brief takes the first kind named, a drawing the
# kind named first in the text and, on a tie, the earlier one here), the more specific kind comes first:
# "保温杯" (a thermos) is a bottle and not a mug, "smartwatch" a watch and not a phone, "马克杯" a mug and not a
# horse, "面霜" cosmetics and not food.
SUBJECT_WORDS: dict[str, str] = {
    "headphones": "headphone earphone headset earbud earcup ear_cup 耳机 耳麦",
    "watch": "watch smartwatch wristwatch 手表 腕表 智能表",
    "phone": "phone smartphone iphone mobile handset 手机",
    "laptop": "laptop notebook computer macbook 笔记本电脑 电脑",
    "bottle": "bottle flask thermos tumbler 瓶 保温杯 保温瓶 水壶",
    "mug": "mug cup teacup coffee espresso latte 马克杯 杯子 咖啡杯 茶杯 咖啡 杯",
    "shoe": "shoe sneaker trainer boot 鞋 球鞋 运动鞋 靴",
    "bag": "bag handbag backpack tote purse luggage 包 背包 手提包 行李箱",
    "cosmetics": "lipstick cosmetic makeup cream serum skincare perfume moisturiser moisturizer 口红 "
    "化妆品 化妆 面霜 精华 护肤 香水",
    "boat": "boat sailboat ship yacht canoe kayak ferry raft 船 纸船 帆船 小船 舟",
    "vehicle": "car vehicle suv truck bike bicycle motorbike scooter 汽车 车子 单车 自行车 电动车",
    "building": "building tower skyscraper house hotel apartment storefront cabin lighthouse 大楼 建筑 房子 酒店 "
    "大厦 民宿",
    "food": "food dish noodle ramen meal cake bread pastry salad burger pizza snack mooncake chocolate tea "
    "面 饭 菜 蛋糕 美食 点心 月饼 零食 面条 巧克力 茶 食品",
    "animal": "dog puppy cat kitten pet horse bird fox animal 狗 猫 宠物 马 鸟 狐 动物",
    "person": "person people man men woman women girl boy fisherman child children kid nurse hiker runner "
    "commuter keeper she he couple family friends mother father grandmother worker chef 人 女 男 孩 "
    "她 他 护士 家人 朋友 妈妈 爸爸 奶奶 老人 女孩 男孩",
}
# The kinds that are things a brief sells (a film "for" one of them is a product film).
PRODUCT_KINDS = ("headphones", "watch", "phone", "laptop", "bottle", "mug", "shoe", "bag", "cosmetics")


@cache
def _pattern(kind: str) -> re.Pattern[str]:
    latin = [re.escape(w.replace("_", " ")) for w in SUBJECT_WORDS[kind].split() if w.isascii()]
    cjk = [re.escape(w) for w in SUBJECT_WORDS[kind].split() if not w.isascii()]
    # The leftmost match of the alternation is where the first of the kind's words stands.
    return re.compile("|".join([rf"\b(?:{'|'.join(latin)})(?:s|es)?\b", *cjk]))


def subject_hits(text: str) -> dict[str, int]:
    """Each kind the (lower-case) text names, with where its first word stands, in SUBJECT_WORDS order."""
    return {kind: m.start() for kind in SUBJECT_WORDS if (m := _pattern(kind).search(text))}


def first_product_word(text: str) -> str | None:
    """The first word of a product kind in the (lower-case) text, as it stands there: "headphones"."""
    found = [m for kind in PRODUCT_KINDS if (m := _pattern(kind).search(text))]
    return min(found, key=lambda m: m.start()).group(0) if found else None
