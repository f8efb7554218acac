"""ADCore fidelity of the simulator's table and file naming (in-process, no CA traffic)."""

from __future__ import annotations

import pytest

from adscan.iocs import ad_table
from adscan.iocs.h5file import format_name


@pytest.mark.parametrize(
    "template,expected",
    [
        ("%s%s.h5", "/d/img.h5"),  # surplus number ignored, as epicsSnprintf does
        ("%s%s_%3.3d.h5", "/d/img_007.h5"),
        ("%s%s_%6.6d.h5", "/d/img_000007.h5"),
        ("%s%s_%d.trouble", "/d/img_7.trouble"),
        ("%s%s_%ld%%.x", "/d/img_7%.x"),
        ("%s%s_%04u.tif", "/d/img_0007.tif"),
        ("plain", "plain"),
    ],
)
def test_file_template_formats_like_adcore(template, expected):
    assert format_name(template, "/d/", "img", 7) == expected


def spec(group: str, name: str) -> ad_table.PVSpec:
    return {s.name: s for s in ad_table.spec_for(group)}[name]


def test_common_plugins_are_served_with_template_types():
    for group in (
        "TIFF1:",
        "JPEG1:",
        "netCDF1:",
        "Nexus1:",
        "Magick1:",
        "Proc1:",
        "Trans1:",
        "Over1:",
        "CC1:",
        "CB1:",
        "ROIStat1:",
        "Attr1:",
        "FFT1:",
        "Codec1:",
        "Scatter1:",
        "Gather1:",
        "BadPix1:",
    ):
        assert group in ad_table.GROUPS
        assert spec(group, "PluginType_RBV").read_only
        assert spec(group, "EnableCallbacks").default == "Disable"  # NDPluginBase $(ENABLED=0)
    assert spec("TIFF1:", "FileFormat").enums == ("TIFF", "Invalid")
    assert spec("TIFF1:", "FileFormat").rtype == "mbbo"
    assert spec("TIFF1:", "FullFileName_RBV").length == 512
    assert spec("Over1:", "1:Name").default == "ROI1"
    assert spec("Over1:", "8:Shape").enums == ("Cross", "Rectangle", "Ellipse", "Text")
    assert spec("CB1:", "FlushOnSoftTrg").enums == ("OnNewImage", "Immediately")
    assert spec("Proc1:", "HighClip_RBV").rtype == "ai"
    assert "ROIStat1:8:Total_RBV" in ad_table.all_pv_names("")
    # the how-to's groups keep their own defaults and records (unchanged by the common set)
    assert spec("HDF1:", "EnableCallbacks").default == "Enable"
    assert sum(len(ad_table.spec_for(g)) for g in ad_table.HOWTO_GROUPS) == 1064
