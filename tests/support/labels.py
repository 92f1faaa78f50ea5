"""Labels that stress the prompt fitting."""

from __future__ import annotations

#: 29 CJK characters: 73 tokens alone, over CLIP's 75 once inside "a photo of a {}".
CJK_LABEL = "一只在阳光明媚的公园草地上快乐奔跑的金色长毛小狗和它的红色"
