"""Flash and RAM of a linked firmware image, read from its ELF sections.

Flash holds every allocated section that has contents (code, read-only data, the initial values of
.data); RAM every writable allocated section (.data, .bss, the arena when it is static, the stack
and heap sections some linker scripts reserve). This is what `arm-none-eabi-size` calls text + data
and data + bss.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codegen.errors import TfgenError


@dataclass(frozen=True)
class ImageSize:
    flash: int
    ram: int
    sections: tuple[tuple[str, int, bool, bool], ...]   # name, size, in flash, in RAM

    def to_dict(self) -> dict:
        return {"flash_bytes": self.flash, "ram_bytes": self.ram,
                "sections": [{"name": n, "bytes": s, "flash": f, "ram": r} for n, s, f, r in self.sections]}


def image_size(elf_path: Path) -> ImageSize:
    from elftools.common.exceptions import ELFError
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.elffile import ELFFile
    try:
        with Path(elf_path).open("rb") as f:
            elf = ELFFile(f)
            rows = []
            for sec in elf.iter_sections():
                flags, size = sec["sh_flags"], sec["sh_size"]
                if not flags & SH_FLAGS.SHF_ALLOC or size == 0:
                    continue
                has_bits = sec["sh_type"] != "SHT_NOBITS"
                writable = bool(flags & SH_FLAGS.SHF_WRITE)
                rows.append((sec.name, size, has_bits, writable))
    except (OSError, ELFError) as exc:
        raise TfgenError(f"{elf_path}: cannot read the firmware image ({exc})", "build the project again")
    return ImageSize(sum(s for _, s, f, _ in rows if f), sum(s for _, s, _, r in rows if r), tuple(rows))
