// SPDX-License-Identifier: MIT
// Compiled like TestToken.sol (see README.md).
pragma solidity 0.8.28;

// Answers as an ERC-20 (decimals, symbol, balanceOf) and says `true` to every transfer and approval, but moves
// nothing and logs nothing: a receipt with status 1 proves nothing about a token transfer.
contract SilentToken {
    string public symbol = "SLNT";
    uint8 public constant decimals = 6;

    function balanceOf(address) external pure returns (uint256) {
        return 10 ** 24;
    }

    function transfer(address, uint256) external pure returns (bool) {
        return true;
    }

    function approve(address, uint256) external pure returns (bool) {
        return true;
    }
}
