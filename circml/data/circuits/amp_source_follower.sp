* amp_source_follower: NMOS source follower (common drain) with NMOS current-sink bias
.include ../models/ptm45.lib
* sizing / bias parameters
.param w_sf=4u l_sf=180n w_cs=4u l_cs=360n ibias=20u cl=100f vin_dc=0.8
Vdd vdd 0 DC 1.0
Vin in 0 DC {vin_dc} AC 1
M1 vdd in out 0 nmos45 w={w_sf} l={l_sf}
* current sink mirrored from the reference diode
Iref vdd vbn DC {ibias}
M3 vbn vbn 0 0 nmos45 w={w_cs} l={l_cs}
M2 out vbn 0 0 nmos45 w={w_cs} l={l_cs}
Cl out 0 {cl}
.end
