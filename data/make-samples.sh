#!/bin/sh
# make-samples.sh - rebuilds data/samples/ (6 clear and 6 blurred photos) from the Debian 12
# packages the photographs come from, with the libvips command-line tools.
#
#   data/make-samples.sh              download the two packages with apt-get download
#   data/make-samples.sh DEB_DIR      use the .deb files already in DEB_DIR
#
# Needs apt-get (or the .debs), dpkg-deb, sha256sum and vips (libvips-tools).  Each source is
# checked against the sha256 in photo-sources.tsv before use.  The clear and the blurred
# class are made from different photographs, so a classifier cannot match a blurred sample
# to its sharp twin.  With libvips 8.14.1 and libjpeg-turbo 2.1.5 (Debian 12) the output is
# byte-identical to the committed files (data/samples.sha256); other versions may differ in
# the last bits of the JPEG coding.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out="$here/samples"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

skimage_deb="python3-skimage_0.19.3-8_all.deb"
mate_deb="mate-backgrounds_1.26.0-1_all.deb"
if [ $# -ge 1 ]; then
    debs=$(cd "$1" && pwd)
else
    debs="$work/debs"
    mkdir -p "$debs"
    (cd "$debs" && apt-get download python3-skimage=0.19.3-8 mate-backgrounds=1.26.0-1)
fi
dpkg-deb -x "$debs/$skimage_deb" "$work/root"
dpkg-deb -x "$debs/$mate_deb" "$work/root"

skimage=usr/lib/python3/dist-packages/skimage/data
mate=usr/share/backgrounds/mate/nature

# Every source must be exactly the file photo-sources.tsv lists.
(cd "$work/root" && sha256sum --check --quiet) <<EOF
e35a9a4126ef969c90b29c038058c5a575a20eadd84106a37bf1fa9931e7b61d  $mate/LadyBird.jpg
254da96256acb7add685679775a04d1e4a5bc8cd13e5a5a3d61351ce198a5306  $mate/YellowFlower.jpg
19c78500ac00a622e19907ab9cc7d06d46fe08c4a6142759a84195696150ec07  $mate/Wood.jpg
8a67c2cb0be8c46b70c237311a4fa4d2b4ac7d39568135384787801fa5cc9a91  $mate/Dune.jpg
88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5  $skimage/astronaut.png
c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c  $skimage/rocket.jpg
d3095ee09d425ef23d27155412136cf14fc3c9af76ca58b452f55e23da324e78  $mate/Garden.jpg
972b0a0c4e5e3fa93f4f244fc84bc64b121a5eac3aaa5856f1308c1f38a02f8e  $mate/FreshFlower.jpg
cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7  $skimage/coffee.png
665e5abf8a5399070a91a9a8e455fe071e5b61697ff78fdeda4e9843ef545aeb  $mate/TwoWings.jpg
3e4ea9671c28c90a86cf67b3db9daf18c4741587c596333a7529ca589aaa0c16  $mate/RainDrops.jpg
b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a  $skimage/camera.png
EOF
skimage="$work/root/$skimage"
mate="$work/root/$mate"

# shrink IN LONG OUT: resizes IN (Lanczos 3) so that its long side is LONG pixels, or copies
# it when it is not longer than that, into the lossless .v file OUT.
shrink() {
    width=$(vipsheader -f width "$1")
    height=$(vipsheader -f height "$1")
    long=$((width > height ? width : height))
    if [ "$long" -gt "$2" ]; then
        vips resize "$1" "$3" "$(awk "BEGIN { printf \"%.10f\", $2 / $long }")"
    else
        vips copy "$1" "$3"
    fi
}

# save IN NAME.jpg: the one JPEG finish shared by both classes (quality 88, 4:2:0 chroma,
# metadata stripped), so that JPEG coding tells nothing about the class.
save() {
    vips jpegsave "$1" "$2" --Q 88 --strip --optimize-coding --subsample-mode on
}

# Motion-blur masks: a line of LENGTH ones, horizontal or along the main diagonal, divided by
# LENGTH so the brightness is kept.
line_mask() { # LENGTH FILE
    {
        echo "$1 1 $1 0"
        i=0
        row=
        while [ $i -lt "$1" ]; do row="$row 1"; i=$((i + 1)); done
        echo "$row"
    } >"$2"
}
diagonal_mask() { # LENGTH FILE
    {
        echo "$1 $1 $1 0"
        r=0
        while [ $r -lt "$1" ]; do
            c=0
            row=
            while [ $c -lt "$1" ]; do
                if [ $c -eq $r ]; then row="$row 1"; else row="$row 0"; fi
                c=$((c + 1))
            done
            echo "$row"
            r=$((r + 1))
        done
    } >"$2"
}

# sharp NAME SOURCE LONG: a clear sample, only resized.
sharp() {
    shrink "$2" "$3" "$work/$1.v"
    save "$work/$1.v" "$out/Undistorted/$1.jpg"
}

# gaussian NAME SOURCE LONG SIGMA: resized, then a Gaussian blur of SIGMA pixels at the
# output size (kernel cut where it falls below 1 % of its peak, so about 3 sigma wide).
gaussian() {
    shrink "$2" "$3" "$work/$1.v"
    vips gaussblur "$work/$1.v" "$work/$1-blurred.v" "$4" --min-ampl 0.01
    save "$work/$1-blurred.v" "$out/Blurred/$1.jpg"
}

# motion NAME SOURCE LONG MASK: resized, then convolved with a motion mask at the output size.
motion() {
    shrink "$2" "$3" "$work/$1.v"
    vips conv "$work/$1.v" "$work/$1-blurred.v" "$4" --precision integer
    save "$work/$1-blurred.v" "$out/Blurred/$1.jpg"
}

rm -rf "$out"
mkdir -p "$out/Undistorted" "$out/Blurred"
line_mask 15 "$work/line15.mat"
line_mask 9 "$work/line9.mat"
diagonal_mask 11 "$work/diagonal11.mat"

# Clear photographs (Undistorted).
sharp ladybird "$mate/LadyBird.jpg" 1280
sharp yellow-flower "$mate/YellowFlower.jpg" 1280
sharp wood "$mate/Wood.jpg" 1280
sharp dune "$mate/Dune.jpg" 1280
sharp astronaut "$skimage/astronaut.png" 1280
sharp rocket "$skimage/rocket.jpg" 1280

# Blurred photographs: other photographs, blurred after resizing.
gaussian garden "$mate/Garden.jpg" 1280 3
gaussian fresh-flower "$mate/FreshFlower.jpg" 1280 2.5
gaussian coffee "$skimage/coffee.png" 1280 2
motion two-wings "$mate/TwoWings.jpg" 1280 "$work/line15.mat"
motion rain-drops "$mate/RainDrops.jpg" 1280 "$work/diagonal11.mat"
motion camera "$skimage/camera.png" 1280 "$work/line9.mat"

(cd "$here" && find samples -name '*.jpg' | LC_ALL=C sort | xargs sha256sum)
