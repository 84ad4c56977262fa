"""Reference networks written the way the original SFTGAN code is: tuple-passing ``nn.Sequential``,
one SFT layer at a time, four separate 1x1 convs per SFT layer, in-place activations.

Independent of ``sftgan_lit.models`` (written from the architecture notes of the released checkpoints),
so that loading the same state dict into both and comparing outputs tests the package's networks.
Also the baseline of ``benchmarks/bench_generator.py``.
"""

import torch
import torch.nn.functional as F
from torch import nn


class RefSFTLayer(nn.Module):
    def __init__(self, slope=0.1, plain=False):
        super().__init__()
        self.slope, self.plain = slope, plain
        self.SFT_scale_conv0 = nn.Conv2d(32, 32, 1)
        self.SFT_scale_conv1 = nn.Conv2d(32, 64, 1)
        self.SFT_shift_conv0 = nn.Conv2d(32, 32, 1)
        self.SFT_shift_conv1 = nn.Conv2d(32, 64, 1)

    def forward(self, x):
        scale = self.SFT_scale_conv1(F.leaky_relu(self.SFT_scale_conv0(x[1]), self.slope, inplace=True))
        shift = self.SFT_shift_conv1(F.leaky_relu(self.SFT_shift_conv0(x[1]), self.slope, inplace=True))
        return x[0] * scale + shift if self.plain else x[0] * (scale + 1) + shift


class RefResBlock(nn.Module):
    def __init__(self, torch7=False):
        super().__init__()
        self.torch7 = torch7
        self.sft0 = RefSFTLayer(0.01 if torch7 else 0.1, torch7)
        self.conv0 = nn.Conv2d(64, 64, 3, 1, 1)
        self.sft1 = RefSFTLayer(0.01 if torch7 else 0.1, torch7)
        self.conv1 = nn.Conv2d(64, 64, 3, 1, 1)

    def forward(self, x):
        if self.torch7:
            fea = F.relu(self.sft0(x), inplace=True)
            fea = self.conv0(fea)
            fea = F.relu(self.sft1((fea, x[1])), inplace=True)
            fea = self.conv1(fea)
        else:
            fea = self.sft0(x)
            fea = F.relu(self.conv0(fea), inplace=True)
            fea = self.sft1((fea, x[1]))
            fea = self.conv1(fea)
        return (x[0] + fea, x[1])


class RefSFTNet(nn.Module):
    """``torch7=False``: SFTGAN_noBN_OST_bg layout; ``torch7=True``: SFTGAN_torch layout."""

    def __init__(self, torch7=False):
        super().__init__()
        self.conv0 = nn.Conv2d(3, 64, 3, 1, 1)
        blocks = [RefResBlock(torch7) for _ in range(16)]
        blocks.append(RefSFTLayer(0.01 if torch7 else 0.1, torch7))
        blocks.append(nn.Conv2d(64, 64, 3, 1, 1))
        self.sft_branch = nn.Sequential(*blocks)
        if torch7:
            self.HR_branch = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(64, 64, 3, 1, 1),
                nn.ReLU(True),
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(64, 64, 3, 1, 1),
                nn.ReLU(True),
                nn.Conv2d(64, 64, 3, 1, 1),
                nn.ReLU(True),
                nn.Conv2d(64, 3, 3, 1, 1),
            )
        else:
            self.HR_branch = nn.Sequential(
                nn.Conv2d(64, 256, 3, 1, 1),
                nn.PixelShuffle(2),
                nn.ReLU(True),
                nn.Conv2d(64, 256, 3, 1, 1),
                nn.PixelShuffle(2),
                nn.ReLU(True),
                nn.Conv2d(64, 64, 3, 1, 1),
                nn.ReLU(True),
                nn.Conv2d(64, 3, 3, 1, 1),
            )
        self.CondNet = nn.Sequential(
            nn.Conv2d(8, 128, 4, 4),
            nn.LeakyReLU(0.1, True),
            nn.Conv2d(128, 128, 1),
            nn.LeakyReLU(0.1, True),
            nn.Conv2d(128, 128, 1),
            nn.LeakyReLU(0.1, True),
            nn.Conv2d(128, 128, 1),
            nn.LeakyReLU(0.1, True),
            nn.Conv2d(128, 32, 1),
        )

    def forward(self, x):
        cond = self.CondNet(x[1])
        fea = self.conv0(x[0])
        res = self.sft_branch((fea, cond))
        return self.HR_branch(fea + res)


def ref_conv_bn(c_in, c_out, k, stride=1, dilation=1, relu=True):
    layers = [nn.Conv2d(c_in, c_out, k, stride, dilation * (k - 1) // 2, dilation, bias=False), nn.BatchNorm2d(c_out)]
    return layers + ([nn.ReLU(True)] if relu else [])


class RefRes131(nn.Module):
    def __init__(self, c_in, c_mid, c_out, dilation=1, stride=1):
        super().__init__()
        self.res = nn.Sequential(
            *ref_conv_bn(c_in, c_mid, 1),
            *ref_conv_bn(c_mid, c_mid, 3, stride, dilation),
            *ref_conv_bn(c_mid, c_out, 1, relu=False),
        )
        self.has_proj = c_in != c_out
        if self.has_proj:
            self.proj = nn.Sequential(*ref_conv_bn(c_in, c_out, 1, stride, relu=False))

    def forward(self, x):
        res = self.res(x)
        if self.has_proj:
            x = self.proj(x)
        return F.relu(x + res, inplace=True)


class RefOutdoorSceneSeg(nn.Module):
    """Takes the preprocessed input (x4 bicubic, BGR, 0-255 minus means), like the original."""

    def __init__(self, layers=(3, 4, 23, 3), w=64):
        super().__init__()
        blocks = [
            *ref_conv_bn(3, w, 3, 2),
            *ref_conv_bn(w, w, 3),
            *ref_conv_bn(w, 2 * w, 3),
            nn.MaxPool2d(3, stride=2, padding=0, ceil_mode=True),
        ]
        blocks.append(RefRes131(2 * w, w, 4 * w))
        blocks += [RefRes131(4 * w, w, 4 * w) for _ in range(layers[0] - 1)]
        blocks.append(RefRes131(4 * w, 2 * w, 8 * w, 1, 2))
        blocks += [RefRes131(8 * w, 2 * w, 8 * w) for _ in range(layers[1] - 1)]
        blocks.append(RefRes131(8 * w, 4 * w, 16 * w, 2))
        blocks += [RefRes131(16 * w, 4 * w, 16 * w, 2) for _ in range(layers[2] - 1)]
        blocks.append(RefRes131(16 * w, 8 * w, 32 * w, 4))
        blocks += [RefRes131(32 * w, 8 * w, 32 * w, 4) for _ in range(layers[3] - 1)]
        blocks += [*ref_conv_bn(32 * w, 8 * w, 3), nn.Dropout(0.1), nn.Conv2d(8 * w, 8, 1, 1)]
        self.feature = nn.Sequential(*blocks)
        self.deconv = nn.ConvTranspose2d(8, 8, 16, 8, 4, 0, 8, False, 1)
        self.softmax = nn.Softmax(1)

    def forward(self, x):
        return self.softmax(self.deconv(self.feature(x)))


class RefACD(nn.Module):
    def __init__(self):
        super().__init__()

        def cbl(i, o, k, s):  # noqa: E306
            return [nn.Conv2d(i, o, k, s, 1), nn.BatchNorm2d(o), nn.LeakyReLU(0.1, True)]

        self.feature = nn.Sequential(
            nn.Conv2d(3, 64, 3, 1, 1),
            nn.LeakyReLU(0.1, True),
            *cbl(64, 64, 4, 2),
            *cbl(64, 128, 3, 1),
            *cbl(128, 128, 4, 2),
            *cbl(128, 256, 3, 1),
            *cbl(256, 256, 4, 2),
            *cbl(256, 512, 3, 1),
            *cbl(512, 512, 4, 2),
        )
        self.gan = nn.Sequential(nn.Linear(512 * 36, 100), nn.LeakyReLU(0.1, True), nn.Linear(100, 1))
        self.cls = nn.Sequential(nn.Linear(512 * 36, 100), nn.LeakyReLU(0.1, True), nn.Linear(100, 8))

    def forward(self, x):
        fea = self.feature(x).view(x.size(0), -1)
        return [self.gan(fea), self.cls(fea)]


# --- The backbones of Real-ESRGAN, written as its code is (basicsr/archs/rrdbnet_arch.py,
# realesrgan/archs/srvgg_arch.py): the sources ``init_from`` starts from, and what an SFT generator whose
# conditioning layers are the identity must equal.


def ref_pixel_unshuffle(x, scale):
    b, c, hh, hw = x.size()
    h, w = hh // scale, hw // scale
    x_view = x.view(b, c, h, scale, w, scale)
    return x_view.permute(0, 1, 3, 5, 2, 4).reshape(b, c * scale * scale, h, w)


class RefRDB5(nn.Module):
    def __init__(self, nf=64, gc=32):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RefRRDB(nn.Module):
    def __init__(self, nf, gc=32):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = RefRDB5(nf, gc), RefRDB5(nf, gc), RefRDB5(nf, gc)

    def forward(self, x):
        out = self.rdb1(x)
        out = self.rdb2(out)
        out = self.rdb3(out)
        return out * 0.2 + x


class RefRRDBNet(nn.Module):
    """Real-ESRGAN's RRDBNet (x4, x2 and x1; x3 as ESRGAN-layout models do it: one nearest x3 then conv_up1)."""

    def __init__(self, num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=23, num_grow_ch=32):
        super().__init__()
        self.scale = scale
        if scale == 2:
            num_in_ch = num_in_ch * 4
        elif scale == 1:
            num_in_ch = num_in_ch * 16
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RefRRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        if scale != 3:
            self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        if self.scale == 2:
            feat = ref_pixel_unshuffle(x, scale=2)
        elif self.scale == 1:
            feat = ref_pixel_unshuffle(x, scale=4)
        else:
            feat = x
        feat = self.conv_first(feat)
        body_feat = self.conv_body(self.body(feat))
        feat = feat + body_feat
        if self.scale == 3:
            feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=3, mode="nearest")))
        else:
            feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
            feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


class RefSRVGGNetCompact(nn.Module):
    """Real-ESRGAN's SRVGGNetCompact (PReLU)."""

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4):
        super().__init__()
        self.upscale = upscale
        self.body = nn.ModuleList()
        self.body.append(nn.Conv2d(num_in_ch, num_feat, 3, 1, 1))
        self.body.append(nn.PReLU(num_parameters=num_feat))
        for _ in range(num_conv):
            self.body.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.body.append(nn.PReLU(num_parameters=num_feat))
        self.body.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x):
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        base = F.interpolate(x, scale_factor=self.upscale, mode="nearest")
        out += base
        return out
