;; The two passes of resize.ts's separable resize of 8-bit RGB, on this module's own memory. Weights are in 2.14
;; fixed point, as i16, and sum to 16384 per output sample, so results stay within 0..255. Pointers are byte offsets.
;; Built into resize-kernels-binary.ts by scripts/build-wasm.mjs.
(module
  (memory (export "memory") 1)

  ;; Rows: dst[y, x] = (8192 + sum_k src[starts[y] + k, x] * w[y, k]) >> 14 for x < bytes (a multiple of 16),
  ;; k < counts[y]; sixteen bytes at a time in SIMD, the taps two at a time: the bytes of source rows a and b are
  ;; interleaved and widened to i16 pairs (a_x, b_x), and one dot product with (w_a, w_b) gives four sums at once.
  ;; pairs holds, per output row, maxPairs vectors of i16 (w_a, w_b) x 4; an odd count's last pair has w_b = 0 and
  ;; reads the row after a (the caller lays out more memory after the source, so the read stays within memory).
  (func (export "vertical")
      (param $src i32) (param $srcStride i32) (param $dst i32) (param $dstStride i32) (param $rows i32) (param $bytes i32)
      (param $starts i32) (param $counts i32) (param $pairs i32) (param $maxPairs i32)
    (local $y i32) (local $x i32) (local $k i32) (local $n i32) (local $p i32) (local $w i32) (local $out i32)
    (local $row i32) (local $wrow i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $va v128) (local $vb v128)
    (local $lo v128) (local $hi v128) (local $wv v128)
    (block $done
      (loop $rowloop
        (br_if $done (i32.ge_u (local.get $y) (local.get $rows)))
        (local.set $n (i32.load (i32.add (local.get $counts) (i32.shl (local.get $y) (i32.const 2)))))
        (local.set $out (i32.add (local.get $dst) (i32.mul (local.get $y) (local.get $dstStride))))
        (local.set $row (i32.add (local.get $src)
          (i32.mul (i32.load (i32.add (local.get $starts) (i32.shl (local.get $y) (i32.const 2)))) (local.get $srcStride))))
        (local.set $wrow (i32.add (local.get $pairs) (i32.shl (i32.mul (local.get $y) (local.get $maxPairs)) (i32.const 4))))
        (local.set $x (i32.const 0))
        (block $row_done
          (loop $column
            (br_if $row_done (i32.ge_u (local.get $x) (local.get $bytes)))
            (local.set $a0 (i32x4.splat (i32.const 8192)))
            (local.set $a1 (local.get $a0))
            (local.set $a2 (local.get $a0))
            (local.set $a3 (local.get $a0))
            (local.set $p (i32.add (local.get $row) (local.get $x)))
            (local.set $w (local.get $wrow))
            (local.set $k (i32.const 0))
            (block $taps_done
              (loop $pair
                (br_if $taps_done (i32.ge_u (local.get $k) (local.get $n)))
                (local.set $va (v128.load (local.get $p)))
                (local.set $vb (v128.load (i32.add (local.get $p) (local.get $srcStride))))
                (local.set $wv (v128.load (local.get $w)))
                (local.set $lo (i8x16.shuffle 0 16 1 17 2 18 3 19 4 20 5 21 6 22 7 23 (local.get $va) (local.get $vb)))
                (local.set $hi (i8x16.shuffle 8 24 9 25 10 26 11 27 12 28 13 29 14 30 15 31 (local.get $va) (local.get $vb)))
                (local.set $a0 (i32x4.add (local.get $a0) (i32x4.dot_i16x8_s (i16x8.extend_low_i8x16_u (local.get $lo)) (local.get $wv))))
                (local.set $a1 (i32x4.add (local.get $a1) (i32x4.dot_i16x8_s (i16x8.extend_high_i8x16_u (local.get $lo)) (local.get $wv))))
                (local.set $a2 (i32x4.add (local.get $a2) (i32x4.dot_i16x8_s (i16x8.extend_low_i8x16_u (local.get $hi)) (local.get $wv))))
                (local.set $a3 (i32x4.add (local.get $a3) (i32x4.dot_i16x8_s (i16x8.extend_high_i8x16_u (local.get $hi)) (local.get $wv))))
                (local.set $p (i32.add (local.get $p) (i32.shl (local.get $srcStride) (i32.const 1))))
                (local.set $w (i32.add (local.get $w) (i32.const 16)))
                (local.set $k (i32.add (local.get $k) (i32.const 2)))
                (br $pair)))
            (v128.store (i32.add (local.get $out) (local.get $x))
              (i8x16.narrow_i16x8_u
                (i16x8.narrow_i32x4_s (i32x4.shr_s (local.get $a0) (i32.const 14)) (i32x4.shr_s (local.get $a1) (i32.const 14)))
                (i16x8.narrow_i32x4_s (i32x4.shr_s (local.get $a2) (i32.const 14)) (i32x4.shr_s (local.get $a3) (i32.const 14)))))
            (local.set $x (i32.add (local.get $x) (i32.const 16)))
            (br $column)))
        (local.set $y (i32.add (local.get $y) (i32.const 1)))
        (br $rowloop))))

    ;; Columns of RGB pixels, SIMD per pixel, five taps at a time: dst[y, x, c] = (8192 + sum_k src[y, starts[x] + k, c]
  ;; * w[x, k]) >> 14, dst rows width * 3 bytes, unpadded. For each group of five taps, one 16-byte load at
  ;; offsets[x] + 15 * group (byte offsets into the row) holds the five RGB source pixels. Two swizzles widen them to
  ;; i16 lanes (r0 r1 g0 g1 b0 b1 r2 r3) and (g2 g3 b2 b3 r4 g4 b4 0); with the group's two weight vectors (w0 w1 w0
  ;; w1 w0 w1 w2 w3) and (w2 w3 w2 w3 w4 w4 w4 0), two dot products and one widening multiply give the partial sums,
  ;; which one shuffle and three adds bring to R, G and B. Taps past a sample's count weigh 0 (their bytes are read:
  ;; the caller leaves 16 spare bytes after the rows). Stores four bytes per pixel, so dst needs one spare byte.
  (func (export "horizontal")
      (param $src i32) (param $srcStride i32) (param $dst i32) (param $rows i32) (param $width i32)
      (param $offsets i32) (param $weights i32) (param $groups i32)
    (local $y i32) (local $x i32) (local $g i32) (local $row i32) (local $p i32) (local $w i32)
    (local $v v128) (local $d1 v128) (local $v23 v128) (local $w23 v128) (local $sum v128)
    (block $done
      (loop $rowloop
        (br_if $done (i32.ge_u (local.get $y) (local.get $rows)))
        (local.set $row (i32.add (local.get $src) (i32.mul (local.get $y) (local.get $srcStride))))
        (local.set $x (i32.const 0))
        (local.set $w (local.get $weights))
        (block $row_done
          (loop $column
            (br_if $row_done (i32.ge_u (local.get $x) (local.get $width)))
            (local.set $p (i32.add (local.get $row)
              (i32.load (i32.add (local.get $offsets) (i32.shl (local.get $x) (i32.const 2))))))
            (local.set $sum (i32x4.splat (i32.const 8192)))
            (local.set $g (local.get $groups))
            (loop $group
              (local.set $v (v128.load (local.get $p)))
              (local.set $w23 (v128.load offset=16 (local.get $w)))
              (local.set $d1 (i32x4.dot_i16x8_s (v128.load (local.get $w))
                (i8x16.swizzle (local.get $v) (v128.const i8x16 0 16 3 16 1 16 4 16 2 16 5 16 6 16 9 16))))
              (local.set $v23 (i8x16.swizzle (local.get $v) (v128.const i8x16 7 16 10 16 8 16 11 16 12 16 13 16 14 16 16 16)))
              ;; d1 = [r01 g01 b01 r23]; dot(v23) = [g23 b23 . .]; extmul_high(v23) = [r4 g4 b4 0]
              (local.set $sum (i32x4.add (local.get $sum) (i32x4.add
                (i32x4.add (local.get $d1) (i32x4.extmul_high_i16x8_s (local.get $v23) (local.get $w23)))
                (i8x16.shuffle 12 13 14 15 16 17 18 19 20 21 22 23 0 1 2 3
                  (local.get $d1) (i32x4.dot_i16x8_s (local.get $v23) (local.get $w23))))))
              (local.set $p (i32.add (local.get $p) (i32.const 15)))
              (local.set $w (i32.add (local.get $w) (i32.const 32)))
              (local.set $g (i32.sub (local.get $g) (i32.const 1)))
              (br_if $group (local.get $g)))
            (local.set $sum (i32x4.shr_s (local.get $sum) (i32.const 14)))
            (v128.store32_lane 0 (local.get $dst)
              (i8x16.narrow_i16x8_u (i16x8.narrow_i32x4_s (local.get $sum) (local.get $sum)) (local.get $sum)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 3)))
            (local.set $x (i32.add (local.get $x) (i32.const 1)))
            (br $column)))
        (local.set $y (i32.add (local.get $y) (i32.const 1)))
        (br $rowloop))))

  ;; "horizontal" for one group (at most five taps, a reduction up to 2.5x: the usual photo), without the group loop,
  ;; which costs a fifth of the time here, and four pixels at a time: their sums narrowed together and stored as one
  ;; 16-byte vector of which 12 bytes count (the next store overwrites the rest; dst needs 4 spare bytes). Each pixel
  ;; is "horizontal"'s one group, written out (a function call per pixel cost half the pass again).
  (func (export "horizontal5")
      (param $src i32) (param $srcStride i32) (param $dst i32) (param $rows i32) (param $width i32)
      (param $offsets i32) (param $weights i32)
    (local $y i32) (local $x i32) (local $row i32) (local $o i32) (local $w i32) (local $v v128) (local $d1 v128)
    (local $v23 v128) (local $w23 v128) (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128)
    (block $done
      (loop $rowloop
        (br_if $done (i32.ge_u (local.get $y) (local.get $rows)))
        (local.set $row (i32.add (local.get $src) (i32.mul (local.get $y) (local.get $srcStride))))
        (local.set $x (i32.const 0))
        (local.set $o (local.get $offsets))
        (local.set $w (local.get $weights))
        (block $quads_done
          (loop $quad
            (br_if $quads_done (i32.gt_u (i32.add (local.get $x) (i32.const 4)) (local.get $width)))
            (local.set $v (v128.load (i32.add (local.get $row) (i32.load (local.get $o)))))
            (local.set $w23 (v128.load offset=16 (local.get $w)))
            (local.set $d1 (i32x4.dot_i16x8_s (v128.load (local.get $w))
              (i8x16.swizzle (local.get $v) (v128.const i8x16 0 16 3 16 1 16 4 16 2 16 5 16 6 16 9 16))))
            (local.set $v23 (i8x16.swizzle (local.get $v) (v128.const i8x16 7 16 10 16 8 16 11 16 12 16 13 16 14 16 16 16)))
            (local.set $s0 (i32x4.shr_s (i32x4.add
              (i32x4.add (local.get $d1) (i32x4.extmul_high_i16x8_s (local.get $v23) (local.get $w23)))
              (i32x4.add (i32x4.splat (i32.const 8192))
                (i8x16.shuffle 12 13 14 15 16 17 18 19 20 21 22 23 0 1 2 3
                  (local.get $d1) (i32x4.dot_i16x8_s (local.get $v23) (local.get $w23))))) (i32.const 14)))
            (local.set $v (v128.load (i32.add (local.get $row) (i32.load offset=4 (local.get $o)))))
            (local.set $w23 (v128.load offset=48 (local.get $w)))
            (local.set $d1 (i32x4.dot_i16x8_s (v128.load offset=32 (local.get $w))
              (i8x16.swizzle (local.get $v) (v128.const i8x16 0 16 3 16 1 16 4 16 2 16 5 16 6 16 9 16))))
            (local.set $v23 (i8x16.swizzle (local.get $v) (v128.const i8x16 7 16 10 16 8 16 11 16 12 16 13 16 14 16 16 16)))
            (local.set $s1 (i32x4.shr_s (i32x4.add
              (i32x4.add (local.get $d1) (i32x4.extmul_high_i16x8_s (local.get $v23) (local.get $w23)))
              (i32x4.add (i32x4.splat (i32.const 8192))
                (i8x16.shuffle 12 13 14 15 16 17 18 19 20 21 22 23 0 1 2 3
                  (local.get $d1) (i32x4.dot_i16x8_s (local.get $v23) (local.get $w23))))) (i32.const 14)))
            (local.set $v (v128.load (i32.add (local.get $row) (i32.load offset=8 (local.get $o)))))
            (local.set $w23 (v128.load offset=80 (local.get $w)))
            (local.set $d1 (i32x4.dot_i16x8_s (v128.load offset=64 (local.get $w))
              (i8x16.swizzle (local.get $v) (v128.const i8x16 0 16 3 16 1 16 4 16 2 16 5 16 6 16 9 16))))
            (local.set $v23 (i8x16.swizzle (local.get $v) (v128.const i8x16 7 16 10 16 8 16 11 16 12 16 13 16 14 16 16 16)))
            (local.set $s2 (i32x4.shr_s (i32x4.add
              (i32x4.add (local.get $d1) (i32x4.extmul_high_i16x8_s (local.get $v23) (local.get $w23)))
              (i32x4.add (i32x4.splat (i32.const 8192))
                (i8x16.shuffle 12 13 14 15 16 17 18 19 20 21 22 23 0 1 2 3
                  (local.get $d1) (i32x4.dot_i16x8_s (local.get $v23) (local.get $w23))))) (i32.const 14)))
            (local.set $v (v128.load (i32.add (local.get $row) (i32.load offset=12 (local.get $o)))))
            (local.set $w23 (v128.load offset=112 (local.get $w)))
            (local.set $d1 (i32x4.dot_i16x8_s (v128.load offset=96 (local.get $w))
              (i8x16.swizzle (local.get $v) (v128.const i8x16 0 16 3 16 1 16 4 16 2 16 5 16 6 16 9 16))))
            (local.set $v23 (i8x16.swizzle (local.get $v) (v128.const i8x16 7 16 10 16 8 16 11 16 12 16 13 16 14 16 16 16)))
            (local.set $s3 (i32x4.shr_s (i32x4.add
              (i32x4.add (local.get $d1) (i32x4.extmul_high_i16x8_s (local.get $v23) (local.get $w23)))
              (i32x4.add (i32x4.splat (i32.const 8192))
                (i8x16.shuffle 12 13 14 15 16 17 18 19 20 21 22 23 0 1 2 3
                  (local.get $d1) (i32x4.dot_i16x8_s (local.get $v23) (local.get $w23))))) (i32.const 14)))
            (v128.store (local.get $dst)
              (i8x16.shuffle 0 1 2 4 5 6 8 9 10 12 13 14 0 0 0 0
                (i8x16.narrow_i16x8_u
                  (i16x8.narrow_i32x4_s (local.get $s0) (local.get $s1))
                  (i16x8.narrow_i32x4_s (local.get $s2) (local.get $s3)))
                (local.get $s0)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 12)))
            (local.set $o (i32.add (local.get $o) (i32.const 16)))
            (local.set $w (i32.add (local.get $w) (i32.const 128)))
            (local.set $x (i32.add (local.get $x) (i32.const 4)))
            (br $quad)))
        (block $row_done
          (loop $column
            (br_if $row_done (i32.ge_u (local.get $x) (local.get $width)))
            (local.set $v (v128.load (i32.add (local.get $row) (i32.load (local.get $o)))))
            (local.set $w23 (v128.load offset=16 (local.get $w)))
            (local.set $d1 (i32x4.dot_i16x8_s (v128.load (local.get $w))
              (i8x16.swizzle (local.get $v) (v128.const i8x16 0 16 3 16 1 16 4 16 2 16 5 16 6 16 9 16))))
            (local.set $v23 (i8x16.swizzle (local.get $v) (v128.const i8x16 7 16 10 16 8 16 11 16 12 16 13 16 14 16 16 16)))
            (local.set $s0 (i32x4.shr_s (i32x4.add
              (i32x4.add (local.get $d1) (i32x4.extmul_high_i16x8_s (local.get $v23) (local.get $w23)))
              (i32x4.add (i32x4.splat (i32.const 8192))
                (i8x16.shuffle 12 13 14 15 16 17 18 19 20 21 22 23 0 1 2 3
                  (local.get $d1) (i32x4.dot_i16x8_s (local.get $v23) (local.get $w23))))) (i32.const 14)))
            (v128.store32_lane 0 (local.get $dst)
              (i8x16.narrow_i16x8_u (i16x8.narrow_i32x4_s (local.get $s0) (local.get $s0)) (local.get $s0)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 3)))
            (local.set $o (i32.add (local.get $o) (i32.const 4)))
            (local.set $w (i32.add (local.get $w) (i32.const 32)))
            (local.set $x (i32.add (local.get $x) (i32.const 1)))
            (br $column)))
        (local.set $y (i32.add (local.get $y) (i32.const 1)))
        (br $rowloop))))

  ;; Turn RGB upright (orient.ts's orientationWalk): dst[y, x] = src[first + y * rowStep + x * step], rows of width
  ;; pixels, unpadded; byte offsets, steps may be negative. Moves four bytes per pixel, so src and dst each need a
  ;; spare byte after them.
  (func (export "orient")
      (param $src i32) (param $dst i32) (param $width i32) (param $height i32) (param $first i32) (param $step i32)
      (param $rowStep i32)
    (local $y i32) (local $p i32) (local $end i32)
    (block $done
      (loop $rowloop
        (br_if $done (i32.ge_u (local.get $y) (local.get $height)))
        (local.set $p (i32.add (local.get $src) (i32.add (local.get $first) (i32.mul (local.get $y) (local.get $rowStep)))))
        (local.set $end (i32.add (local.get $dst) (i32.mul (local.get $width) (i32.const 3))))
        (block $row_done
          (loop $pixel
            (br_if $row_done (i32.ge_u (local.get $dst) (local.get $end)))
            (i32.store (local.get $dst) (i32.load (local.get $p)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 3)))
            (local.set $p (i32.add (local.get $p) (local.get $step)))
            (br $pixel)))
        (local.set $y (i32.add (local.get $y) (i32.const 1)))
        (br $rowloop))))
)
