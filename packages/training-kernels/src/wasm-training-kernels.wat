;; SIMD loops for wasm-training-kernels.ts and the depthwise filter gradient, run on TF.js WebAssembly's own memory (imported), so they read and write
;; its tensors in place. Pointers are byte offsets into that memory. Per-channel loops take channels-last data as
;; rows x channels with channels a multiple of 4; per-channel vectors are f32 (coefficients) or f64 (sums).
;; Built into wasm-training-kernels-binary.ts by scripts/build-wasm.mjs.
(module
  (memory (import "env" "memory") 1)

  ;; acc[c] += a[r, c] and acc[channels + c] += a[r, c] * b[r, c] over all rows, in f64.
  (func (export "sums") (param $a i32) (param $b i32) (param $rows i32) (param $channels i32) (param $acc i32)
    (local $r i32) (local $j i32) (local $s i32) (local $t i32)
    (local $va v128) (local $vb v128) (local $alo v128) (local $ahi v128) (local $blo v128) (local $bhi v128)
    (block $done
      (loop $row
        (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $s (local.get $acc))
        (local.set $t (i32.add (local.get $acc) (i32.shl (local.get $channels) (i32.const 3))))
        (local.set $j (i32.const 0))
        (block $row_done
          (loop $channel
            (br_if $row_done (i32.ge_u (local.get $j) (local.get $channels)))
            (local.set $va (v128.load (local.get $a)))
            (local.set $vb (v128.load (local.get $b)))
            (local.set $alo (f64x2.promote_low_f32x4 (local.get $va)))
            (local.set $ahi (f64x2.promote_low_f32x4
              (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $va) (local.get $va))))
            (local.set $blo (f64x2.promote_low_f32x4 (local.get $vb)))
            (local.set $bhi (f64x2.promote_low_f32x4
              (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $vb) (local.get $vb))))
            (v128.store (local.get $s) (f64x2.add (v128.load (local.get $s)) (local.get $alo)))
            (v128.store offset=16 (local.get $s) (f64x2.add (v128.load offset=16 (local.get $s)) (local.get $ahi)))
            (v128.store (local.get $t)
              (f64x2.add (v128.load (local.get $t)) (f64x2.mul (local.get $alo) (local.get $blo))))
            (v128.store offset=16 (local.get $t)
              (f64x2.add (v128.load offset=16 (local.get $t)) (f64x2.mul (local.get $ahi) (local.get $bhi))))
            (local.set $a (i32.add (local.get $a) (i32.const 16)))
            (local.set $b (i32.add (local.get $b) (i32.const 16)))
            (local.set $s (i32.add (local.get $s) (i32.const 32)))
            (local.set $t (i32.add (local.get $t) (i32.const 32)))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $channel)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $row))))

  ;; out[r, c] = a[r, c] * p[c] + b[r, c] * q[c] + k[c]; with b = 0 and q = 0 it is an affine map of a.
  (func (export "affine") (param $a i32) (param $b i32) (param $out i32) (param $rows i32) (param $channels i32)
      (param $p i32) (param $q i32) (param $k i32)
    (local $r i32) (local $j i32)
    (block $done
      (loop $row
        (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $j (i32.const 0))
        (block $row_done
          (loop $channel
            (br_if $row_done (i32.ge_u (local.get $j) (local.get $channels)))
            (v128.store (local.get $out)
              (f32x4.add
                (f32x4.add
                  (f32x4.mul (v128.load (local.get $a)) (v128.load (i32.add (local.get $p) (i32.shl (local.get $j) (i32.const 2)))))
                  (f32x4.mul (v128.load (local.get $b)) (v128.load (i32.add (local.get $q) (i32.shl (local.get $j) (i32.const 2))))))
                (v128.load (i32.add (local.get $k) (i32.shl (local.get $j) (i32.const 2))))))
            (local.set $a (i32.add (local.get $a) (i32.const 16)))
            (local.set $b (i32.add (local.get $b) (i32.const 16)))
            (local.set $out (i32.add (local.get $out) (i32.const 16)))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $channel)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $row))))

  ;; dx[i] = dy[i] where 0 < y[i] < 6, else 0, for n values (any n).
  (func (export "relu6Grad") (param $dy i32) (param $y i32) (param $dx i32) (param $n i32)
    (local $i i32) (local $end i32) (local $v v128) (local $s f32)
    (local.set $end (i32.and (local.get $n) (i32.const -4)))
    (block $done
      (loop $vector
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $v (v128.load (local.get $y)))
        (v128.store (local.get $dx)
          (v128.and (v128.load (local.get $dy))
            (v128.and (f32x4.gt (local.get $v) (f32x4.splat (f32.const 0)))
                      (f32x4.lt (local.get $v) (f32x4.splat (f32.const 6))))))
        (local.set $dy (i32.add (local.get $dy) (i32.const 16)))
        (local.set $y (i32.add (local.get $y) (i32.const 16)))
        (local.set $dx (i32.add (local.get $dx) (i32.const 16)))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $vector)))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $s (f32.load (local.get $y)))
        (f32.store (local.get $dx)
          (select (f32.load (local.get $dy)) (f32.const 0)
            (i32.and (f32.gt (local.get $s) (f32.const 0)) (f32.lt (local.get $s) (f32.const 6)))))
        (local.set $dy (i32.add (local.get $dy) (i32.const 4)))
        (local.set $y (i32.add (local.get $y) (i32.const 4)))
        (local.set $dx (i32.add (local.get $dx) (i32.const 4)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail))))

  ;; acc[c] += sum over j < count of x[j * xStep + c] * dy[j * channels + c], for c < channels (a multiple of 4):
  ;; one tap of a depthwise filter gradient along one row, x advancing xStep bytes per output column. The row sum is
  ;; f32 (count is one output row), added to the f64 acc.
  (func (export "tapSums") (param $x i32) (param $dy i32) (param $acc i32) (param $count i32) (param $xStep i32)
      (param $channels i32)
    (local $c i32) (local $j i32) (local $xp i32) (local $gp i32) (local $dyStep i32) (local $s v128)
    (local.set $dyStep (i32.shl (local.get $channels) (i32.const 2)))
    (block $done
      (loop $block
        (br_if $done (i32.ge_u (local.get $c) (local.get $channels)))
        (local.set $s (f32x4.splat (f32.const 0)))
        (local.set $xp (i32.add (local.get $x) (i32.shl (local.get $c) (i32.const 2))))
        (local.set $gp (i32.add (local.get $dy) (i32.shl (local.get $c) (i32.const 2))))
        (local.set $j (i32.const 0))
        (block $row_done
          (loop $column
            (br_if $row_done (i32.ge_u (local.get $j) (local.get $count)))
            (local.set $s (f32x4.add (local.get $s) (f32x4.mul (v128.load (local.get $xp)) (v128.load (local.get $gp)))))
            (local.set $xp (i32.add (local.get $xp) (local.get $xStep)))
            (local.set $gp (i32.add (local.get $gp) (local.get $dyStep)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $column)))
        (v128.store (local.get $acc) (f64x2.add (v128.load (local.get $acc)) (f64x2.promote_low_f32x4 (local.get $s))))
        (v128.store offset=16 (local.get $acc)
          (f64x2.add (v128.load offset=16 (local.get $acc))
            (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $s) (local.get $s)))))
        (local.set $acc (i32.add (local.get $acc) (i32.const 32)))
        (local.set $c (i32.add (local.get $c) (i32.const 4)))
        (br $block)))))
