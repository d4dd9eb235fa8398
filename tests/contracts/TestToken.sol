// SPDX-License-Identifier: MIT
// A minimal ERC-20 for the end-to-end tests: the deployer receives the whole supply.
// Compiled with solc 0.8.28 (npm `solc`), optimizer on, 200 runs; the bytecode is committed next to it.
pragma solidity 0.8.28;

contract TestToken {
    string public name = "Test USD";
    string public symbol = "TUSD";
    uint8 public constant decimals = 6;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    constructor(uint256 supply) {
        totalSupply = supply;
        balanceOf[msg.sender] = supply;
        emit Transfer(address(0), msg.sender, supply);
    }

    function transfer(address to, uint256 value) external returns (bool) {
        require(to != address(0), "transfer to the zero address");
        require(balanceOf[msg.sender] >= value, "transfer amount exceeds balance");
        balanceOf[msg.sender] -= value;
        balanceOf[to] += value;
        emit Transfer(msg.sender, to, value);
        return true;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        require(allowance[from][msg.sender] >= value, "insufficient allowance");
        require(balanceOf[from] >= value, "transfer amount exceeds balance");
        allowance[from][msg.sender] -= value;
        balanceOf[from] -= value;
        balanceOf[to] += value;
        emit Transfer(from, to, value);
        return true;
    }
}

// Reverts with a reason on `fail()`; records a value on `store(uint256)`.
contract Reverter {
    uint256 public stored;

    function fail() external pure {
        revert("always fails");
    }

    function store(uint256 value) external payable {
        stored = value;
    }
}
