* ota_current_mirror: symmetrical (current-mirror) OTA with NMOS input pair, PMOS diode loads mirrored B times to the output through PMOS and NMOS mirrors
.include ../models/ptm45.lib
* ---- sizing / bias parameters (W, L per matched group); mirror ratio B = w_po / w_pd ----
.param w_in=8u l_in=180n w_pd=8u w_po=16u l_p=360n w_nd=4u w_no=4u l_n=360n
.param w_tail=8u l_tail=360n w_bd=8u ibias=20u cl=500f vcm=0.6 vshift=0.1
Vdd vdd 0 DC 1.0
* ---- bias ----
Iref vdd vbn DC {ibias}
Mb vbn vbn 0 0 nmos45 w={w_bd} l={l_tail}
* ---- input pair with diode-connected PMOS loads ----
M0 tail vbn 0 0 nmos45 w={w_tail} l={l_tail}
M1 a inn tail 0 nmos45 w={w_in} l={l_in}
M2 b inp tail 0 nmos45 w={w_in} l={l_in}
M3 a a vdd vdd pmos45 w={w_pd} l={l_p}
M4 b b vdd vdd pmos45 w={w_pd} l={l_p}
* ---- output mirrors ----
M5 c a vdd vdd pmos45 w={w_po} l={l_p}
M7 c c 0 0 nmos45 w={w_nd} l={l_n}
M6 out b vdd vdd pmos45 w={w_po} l={l_p}
M8 out c 0 0 nmos45 w={w_no} l={l_n}
Cl out 0 {cl}
* ---- open-loop bench: inputs at vcm, AC 1 on inp; DC-only servo with level shift
* (output settles at vcm - vshift) ----
Vinp inp 0 DC {vcm} AC 1
Vshift fb out DC {vshift}
Rfb fb inn 1g
Cfb inn 0 1
.end
